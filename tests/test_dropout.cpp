// dropout tests: being written
