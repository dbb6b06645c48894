// maxpool benchmarks: being written
