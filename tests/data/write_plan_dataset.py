"""Writes an nnU-Net v2 dataset with nibabel for the fingerprint and planner
tests, and expected.json: what nibabel and numpy say of it (sizes, spacings,
aff2axcodes, voxels per class, the foreground's intensity statistics).

Five CT cases of 40 x 32 x 12 voxels (x, y, z), spacings 0.8 x 0.8 x z with
z = 2, 2.5, 3, 4 and 5 mm (so z is the coarse axis: more than 3x x's median),
oriented differently (flips and an axis swap); the label is a box of class 1
and a smaller box of class 2; the image 100 + 10 * label + noise."""
import json
import os
import sys

import nibabel as nib
import numpy as np

out = sys.argv[1]
os.makedirs(os.path.join(out, "imagesTr"), exist_ok=True)
os.makedirs(os.path.join(out, "labelsTr"), exist_ok=True)
rng = np.random.default_rng(3)
z_spacings = [2.0, 2.5, 3.0, 4.0, 5.0]
affines = [
    np.diag([0.8, 0.8, 1, 1]),
    np.diag([-0.8, -0.8, 1, 1]),
    np.diag([0.8, -0.8, -1, 1]),
    np.array([[0, 0.8, 0, 0], [0.8, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float),
    np.diag([-0.8, 0.8, 1, 1]),
]
expected = {"cases": {}, "foreground": []}
foreground = []
for i, (zs, a) in enumerate(zip(z_spacings, affines)):
    a = a.copy()
    a[:3, 2] *= zs
    label = np.zeros((40, 32, 12), np.int16)
    label[5:25, 4:20, 2:9] = 1
    label[8:12 + i, 6:10, 3:6] = 2
    image = (100 + 10 * label + rng.normal(0, 1, label.shape)).astype(np.float32)
    cid = "case%d" % i
    img = nib.Nifti1Image(image, a)
    img.header.set_zooms((0.8, 0.8, zs))
    nib.save(img, os.path.join(out, "imagesTr", cid + "_0000.nii.gz"))
    nib.save(nib.Nifti1Image(label, a), os.path.join(out, "labelsTr", cid + ".nii.gz"))
    back = nib.load(os.path.join(out, "imagesTr", cid + "_0000.nii.gz"))
    expected["cases"][cid] = {
        "size_dhw": [12, 32, 40],
        "spacing_xyz": [float(z) for z in back.header.get_zooms()[:3]],
        "orientation": "".join(nib.aff2axcodes(back.affine)),
        "class_voxels": [int((label == c).sum()) for c in range(3)],
    }
    foreground.append(back.get_fdata()[label > 0])
fg = np.concatenate(foreground)
expected["foreground"] = {"mean": float(fg.mean()), "std": float(fg.std())}
json.dump({"channel_names": {"0": "CT"}, "labels": {"background": 0, "box": 1, "core": 2},
           "numTraining": 5, "file_ending": ".nii.gz"}, open(os.path.join(out, "dataset.json"), "w"))
json.dump(expected, open(os.path.join(out, "expected.json"), "w"), indent=1)
