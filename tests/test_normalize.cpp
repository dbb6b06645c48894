// normalize tests: being written
