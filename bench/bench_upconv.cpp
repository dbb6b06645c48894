// upconv benchmarks: being written
