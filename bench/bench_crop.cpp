// crop benchmarks: being written
