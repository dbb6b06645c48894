// labels tests: being written
