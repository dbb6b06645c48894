// conv tests: being written
