// norm benchmarks: being written
