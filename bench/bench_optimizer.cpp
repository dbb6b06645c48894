// optimizer benchmarks: being written
