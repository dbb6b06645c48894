// dropout benchmarks: being written
