// dataset tests: being written
