#!/usr/bin/env python3
"""Test files for test_nifti, written by nibabel (an independent implementation).

  write_nifti.py OUTDIR        writes the cases into OUTDIR and OUTDIR/expected.json:
                               for each file what nibabel reads back (shape, zooms,
                               affine, values in x-fastest order, header codes)
  write_nifti.py --dump FILE OUT.json
                               the same record for one file (round trips of our writer)

Non-finite values are written as the strings "nan", "inf", "-inf" (JSON has none).
"""
import json
import os
import struct
import sys

import nibabel as nib
import numpy as np

SHAPE = (5, 4, 3)


def affine():
    # A rotation about z, anisotropic zooms and an offset: every matrix entry matters.
    t = np.deg2rad(30)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rot @ np.diag([1.5, 2.0, 2.5])
    a[:3, 3] = [-10.0, 20.0, 5.0]
    return a


def finite_list(values):
    out = []
    for x in values:
        x = float(x)
        out.append(x if np.isfinite(x) else ("nan" if np.isnan(x) else ("inf" if x > 0 else "-inf")))
    return out


def record(path, our_affine=None):
    img = nib.load(path)
    hdr = img.header
    data = img.get_fdata()
    aff = img.affine if our_affine is None else our_affine
    q = hdr.get_qform(coded=False)
    return {
        "shape": [int(s) for s in img.shape],
        "zooms": [float(z) for z in hdr.get_zooms()],
        "affine": [float(x) for x in np.asarray(aff).ravel()],
        "qform": [float(x) for x in np.asarray(q).ravel()],
        "sform": [float(x) for x in np.asarray(hdr.get_sform(coded=False)).ravel()],
        "qform_code": int(hdr["qform_code"]),
        "sform_code": int(hdr["sform_code"]),
        "pixdim": [float(x) for x in hdr["pixdim"]],
        "dtype": str(hdr.get_data_dtype().newbyteorder("=").name),
        "values": finite_list(data.ravel(order="F")),
    }


def values_for(dtype, rng, shape=SHAPE):
    n = int(np.prod(shape))
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = max(int(info.min), -(10**6)), min(int(info.max), 10**6)
        v = rng.integers(lo, hi, size=n, endpoint=True).astype(dt)
        v[0], v[1] = info.min, info.max  # the extremes must survive the float conversion
    else:
        v = (rng.normal(size=n) * 1000).astype(dt)
    return v.reshape(shape, order="F")


def make(kind, data, codes=(1, 2), endian="<", aff=None):
    aff = affine() if aff is None else aff
    if kind in (nib.Nifti1Image, nib.Nifti1Pair):
        header = nib.Nifti1Header(endianness=endian)
    else:
        header = nib.Nifti2Header(endianness=endian)
    header.set_data_dtype(data.dtype)
    img = kind(data, aff, header=header)
    img.set_qform(aff, code=codes[0])
    img.set_sform(aff, code=codes[1])
    img.header.set_xyzt_units("mm")
    return img


def patch_scaling(path, slope, inter):
    # nibabel recomputes scl_slope/inter on save; set them in the file afterwards.
    with open(path, "r+b") as f:
        f.seek(112)
        f.write(struct.pack("<ff", slope, inter))


def main(out):
    rng = np.random.default_rng(7)
    os.makedirs(out, exist_ok=True)
    expected = {}

    def save(name, img, our_affine=None):
        path = os.path.join(out, name)
        nib.save(img, path)
        return path

    for dt in ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]:
        save(f"dt_{dt}.nii", make(nib.Nifti1Image, values_for(dt, rng)))
    save("big_int16.nii", make(nib.Nifti1Image, values_for("int16", rng), endian=">"))
    save("big_float64.nii", make(nib.Nifti1Image, values_for("float64", rng), endian=">"))
    save("nifti2_float32.nii", make(nib.Nifti2Image, values_for("float32", rng)))
    save("nifti2_int16.nii.gz", make(nib.Nifti2Image, values_for("int16", rng)))
    save("big_nifti2.nii", make(nib.Nifti2Image, values_for("uint16", rng), endian=">"))
    save("gz_float32.nii.gz", make(nib.Nifti1Image, values_for("float32", rng)))
    save("pair_int16.hdr", make(nib.Nifti1Pair, values_for("int16", rng)))
    save("pair2_float32.hdr", make(nib.Nifti2Pair, values_for("float32", rng)))
    save("four_d.nii", make(nib.Nifti1Image, values_for("float32", rng, (5, 4, 3, 2))))
    save("two_d.nii", make(nib.Nifti1Image, values_for("int16", rng, (6, 5))))

    flip = affine()
    flip[:, 2] *= -1  # a left-handed qform: qfac = -1
    save("qform_only.nii", make(nib.Nifti1Image, values_for("float32", rng), codes=(1, 0), aff=flip))

    p = save("scaled_int16.nii", make(nib.Nifti1Image, values_for("int16", rng)))
    patch_scaling(p, 2.5, -10.0)
    p = save("scaled_uint8.nii", make(nib.Nifti1Image, values_for("uint8", rng)))
    patch_scaling(p, 0.5, 3.0)
    p = save("slope_zero.nii", make(nib.Nifti1Image, values_for("int16", rng)))
    patch_scaling(p, 0.0, 5.0)  # slope 0 means no scaling at all

    nonfinite = values_for("float32", rng)
    flat = nonfinite.reshape(-1, order="F")
    flat[3], flat[7], flat[8] = np.nan, np.inf, -np.inf
    save("nonfinite.nii", make(nib.Nifti1Image, flat.reshape(SHAPE, order="F")))

    for name in sorted(os.listdir(out)):
        if name.endswith((".nii", ".nii.gz", ".hdr")):
            expected[name] = record(os.path.join(out, name))

    # No qform and no sform: our affine is the standard's diag(pixdim), not
    # nibabel's centred Analyze affine.
    name = "no_codes.nii"
    save(name, make(nib.Nifti1Image, values_for("int16", rng), codes=(0, 0)))
    img = nib.load(os.path.join(out, name))
    diag = np.diag(list(img.header.get_zooms()[:3]) + [1.0])
    expected[name] = record(os.path.join(out, name), our_affine=diag)

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--dump":
        with open(sys.argv[3], "w") as f:
            json.dump(record(sys.argv[2]), f)
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
