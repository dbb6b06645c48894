// patch: being written
