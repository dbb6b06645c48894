// conv benchmarks: being written
