// dataset: being written
