// maxpool: being written
