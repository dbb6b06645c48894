// upconv tests: being written
