// loss tests: being written
