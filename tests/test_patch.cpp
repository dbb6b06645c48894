// patch tests: being written
