// nifti tests: being written
