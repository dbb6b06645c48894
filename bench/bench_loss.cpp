// loss benchmarks: being written
