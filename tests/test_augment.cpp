// augment tests: being written
