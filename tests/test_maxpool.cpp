// maxpool tests: being written
