// optimizer tests: being written
