// metrics benchmarks: being written
