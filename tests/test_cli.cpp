// cli tests: being written
