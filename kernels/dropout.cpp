// dropout: being written
