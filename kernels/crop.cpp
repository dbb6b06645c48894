// crop: being written
