// norm tests: being written
