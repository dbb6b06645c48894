"""Writes, with nibabel and scipy, what the resampling tests compare against:

- case.nii.gz / case_label.nii.gz: a smooth image (two Gaussian blobs) of
  30 x 24 x 10 voxels (x, y, z) at 1.2 x 1.2 x 3 mm, flipped in x and shifted,
  and a label of three classes (a ball of 1, a slab of 2 through it);
- case_at_target.nii.gz / case_label_at_target.nii.gz: both at 0.8 x 0.8 x 2 mm
  by scipy.ndimage.zoom (order 1, grid_mode=True, mode='nearest': voxel
  centres as PyTorch's align_corners=False), the label per class (each class's
  indicator zoomed linearly, then the argmax), with the affine of the same
  physical extent;
- data/: the case and a second one as a csv dataset (data.csv), for training;
- other.nii.gz: the case resampled again (by scipy) to 1.5 x 0.9 x 2.5 mm, with
  its own affine: an input at another spacing and size for `unet predict`;
- expected.json: the grids, spacings and affines.
"""
import json
import os
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

out = sys.argv[1]
os.makedirs(os.path.join(out, "data"), exist_ok=True)

shape = (30, 24, 10)  # x, y, z
spacing = np.array([1.2, 1.2, 3.0])
affine = np.diag([-1.2, 1.2, 3.0, 1.0])
affine[:3, 3] = [20.0, -7.5, 4.0]
x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
pos = np.stack([x, y, z], -1) * spacing  # millimetres
image = 100 * np.exp(-np.sum((pos - [14, 13, 12]) ** 2, -1) / (2 * 6.0 ** 2))
image += 40 * np.exp(-np.sum((pos - [26, 16, 18]) ** 2, -1) / (2 * 4.0 ** 2))
label = np.zeros(shape, np.int16)
label[np.sum((pos - [14, 13, 12]) ** 2, -1) < 8.0 ** 2] = 1
label[:, 10:13, 2:8] = 2


def grid_at(shape, spacing, target):
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target))


def resampled_affine(affine, shape, new_shape):
    scale = np.array(shape, float) / np.array(new_shape, float)
    a = affine.copy()
    a[:3, 3] += affine[:3, :3] @ ((scale - 1) / 2)
    a[:3, :3] = affine[:3, :3] * scale
    return a


def zoom(volume, new_shape):
    factors = [m / n for m, n in zip(new_shape, volume.shape)]
    return ndimage.zoom(volume, factors, order=1, grid_mode=True, mode="nearest")


def zoom_labels(labels, new_shape):
    values = np.unique(labels)
    votes = np.stack([zoom((labels == v).astype(np.float64), new_shape) for v in values])
    return values[np.argmax(votes, 0)].astype(np.int16)  # ties: the first, the smaller value


def save(volume, a, zooms, name, dtype):
    img = nib.Nifti1Image(volume.astype(dtype), a)
    img.header.set_zooms(tuple(float(v) for v in zooms))
    nib.save(img, os.path.join(out, name))


target = np.array([0.8, 0.8, 2.0])
t_shape = grid_at(shape, spacing, target)
t_affine = resampled_affine(affine, shape, t_shape)
t_spacing = spacing * np.array(shape) / np.array(t_shape)
save(image, affine, spacing, "case.nii.gz", np.float32)
save(label, affine, spacing, "case_label.nii.gz", np.int16)
save(zoom(image, t_shape), t_affine, t_spacing, "case_at_target.nii.gz", np.float32)
save(zoom_labels(label, t_shape), t_affine, t_spacing, "case_label_at_target.nii.gz", np.int16)

# A small dataset for training: the case and its mirror image.
for i, (img, lab) in enumerate([(image, label), (image[::-1].copy(), label[::-1].copy())]):
    save(img, affine, spacing, "data/c%d.nii.gz" % i, np.float32)
    save(lab, affine, spacing, "data/c%d_label.nii.gz" % i, np.int16)
with open(os.path.join(out, "data.csv"), "w") as f:
    f.write("path,pathmsk\n")
    for i in range(2):
        f.write("data/c%d.nii.gz,data/c%d_label.nii.gz\n" % (i, i))

other_spacing = np.array([1.5, 0.9, 2.5])
o_shape = grid_at(shape, spacing, other_spacing)
o_affine = resampled_affine(affine, shape, o_shape)
save(zoom(image, o_shape), o_affine, spacing * np.array(shape) / np.array(o_shape), "other.nii.gz", np.float32)

json.dump({"target_grid_xyz": t_shape, "target_spacing": t_spacing.tolist(), "target_affine": t_affine.tolist(),
           "other_grid_xyz": o_shape, "other_affine": o_affine.tolist()},
          open(os.path.join(out, "expected.json"), "w"))
