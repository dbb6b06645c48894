// norm: being written
