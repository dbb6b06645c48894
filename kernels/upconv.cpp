// upconv: being written
