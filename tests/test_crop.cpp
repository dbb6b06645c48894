// crop tests: being written
