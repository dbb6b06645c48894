// optimizer: being written
