// labels: being written
