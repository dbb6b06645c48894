// augment: being written
