// nifti: being written
