// normalize: being written
