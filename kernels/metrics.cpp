// metrics: being written
