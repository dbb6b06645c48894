// image_file: being written
