#!/usr/bin/env python3
"""Test files for test_tiff, written by tifffile and Pillow (independent writers).

  write_tiff.py OUTDIR     writes single- and multi-page files of every kind the
                           reader takes into OUTDIR, and OUTDIR/expected.json:
                           width, height, depth (pages), channels, datatype,
                           full_scale, spacing (mm) and the sample values
                           channels first, then page, row, column
  write_tiff.py --dump FILE OUT.json
                           what tifffile reads from FILE (round trips of our writer)
"""
import json
import os
import sys

import numpy as np
import tifffile
from PIL import Image

W, H = 7, 5  # odd sizes: packed 1-bit rows end mid-byte, tiles overhang


def main(out):
    rng = np.random.default_rng(13)
    os.makedirs(out, exist_ok=True)
    expected = {}

    def expect(name, values, datatype, full_scale, spacing=(1, 1, 1)):
        """values: pages x rows x cols [x channels]."""
        v = np.asarray(values)
        if v.ndim == 3:
            v = v[..., None]
        d, h, w, c = v.shape
        expected[name] = {"width": w, "height": h, "depth": d, "channels": c, "datatype": datatype,
                          "full_scale": full_scale, "spacing": list(spacing),
                          "values": [float(x) for x in np.moveaxis(v, -1, 0).ravel()]}

    def data(dtype, shape):
        if np.dtype(dtype).kind == "f":
            return rng.normal(0, 100, shape).astype(dtype)
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, shape, endpoint=True, dtype=np.int64).astype(dtype)
        a.flat[0], a.flat[1] = info.max, info.min  # the extremes of the range
        return a

    def top(dtype):
        return float(np.iinfo(dtype).max) if np.dtype(dtype).kind == "u" else 0.0

    # tifffile: every sample type, one page and a stack, strips and tiles, both byte orders, compressions.
    for dtype in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32"):
        a = data(dtype, (1, H, W))
        tifffile.imwrite(os.path.join(out, f"{dtype}.tif"), a[0], photometric="minisblack")
        expect(f"{dtype}.tif", a, dtype, top(dtype))
    stack = data("uint16", (6, H, W))
    for name, kwargs in [("stack.tif", {}),
                         ("stack_big_endian.tif", {"byteorder": ">"}),
                         ("stack_tiled.tif", {"tile": (16, 16)}),
                         ("stack_deflate.tif", {"compression": "zlib"}),
                         ("stack_bigtiff.tif", {"bigtiff": True}),
                         ("stack_separate_pages.tif", {"rowsperstrip": 2})]:
        tifffile.imwrite(os.path.join(out, name), stack, photometric="minisblack", **kwargs)
        expect(name, stack, "uint16", 65535.0)
    floats = data("float32", (6, H, W))
    tifffile.imwrite(os.path.join(out, "float_stack_tiled_deflate.tif"), floats, tile=(16, 16), compression="zlib",
                     byteorder=">", photometric="minisblack")
    expect("float_stack_tiled_deflate.tif", floats, "float32", 0.0)
    rgb = data("uint8", (2, H, W, 3))
    tifffile.imwrite(os.path.join(out, "rgb_stack.tif"), rgb, photometric="rgb")
    expect("rgb_stack.tif", rgb, "uint8", 255.0)
    tifffile.imwrite(os.path.join(out, "rgb_planar.tif"), np.moveaxis(rgb[0], -1, 0), photometric="rgb",
                     planarconfig="separate")
    expect("rgb_planar.tif", rgb[:1], "uint8", 255.0)
    # ImageJ's hyperstack: micron units, the slice spacing in its description.
    ij = data("uint8", (6, H, W))
    tifffile.imwrite(os.path.join(out, "imagej.tif"), ij, imagej=True, resolution=(1 / 0.25, 1 / 0.5),
                     metadata={"spacing": 2.0, "unit": "micron", "axes": "ZYX"})
    expect("imagej.tif", ij, "uint8", 255.0, (0.25e-3, 0.5e-3, 2.0e-3))
    # A resolution in pixels per centimetre (the TIFF unit).
    tifffile.imwrite(os.path.join(out, "resolution_cm.tif"), ij[0], resolution=(40, 20), resolutionunit="CENTIMETER",
                     photometric="minisblack")
    expect("resolution_cm.tif", ij[:1], "uint8", 255.0, (0.25, 0.5, 1))

    # Pillow (libtiff underneath for the compressions): LZW, palette, bilevel, min-is-white.
    gray = data("uint8", (1, H, W))
    Image.fromarray(gray[0]).save(os.path.join(out, "pillow_lzw.tif"), compression="tiff_lzw")
    expect("pillow_lzw.tif", gray, "uint8", 255.0)
    Image.fromarray(gray[0]).save(os.path.join(out, "pillow_packbits.tif"), compression="packbits")
    expect("pillow_packbits.tif", gray, "uint8", 255.0)
    palette = [int(x) for x in rng.integers(0, 255, 256 * 3, endpoint=True)]
    idx = rng.integers(0, 256, (H, W)).astype(np.uint8)
    p = Image.fromarray(idx, mode="P")
    p.putpalette(palette)
    p.save(os.path.join(out, "palette.tif"))
    pal = np.array(palette, np.uint8).reshape(256, 3)
    expect("palette.tif", pal[idx][None], "uint8", 255.0)
    bits = rng.integers(0, 2, (H, W)).astype(bool)
    Image.fromarray(bits).save(os.path.join(out, "bilevel.tif"))
    expect("bilevel.tif", bits[None].astype(np.uint8), "uint1", 1.0)
    Image.fromarray(bits).save(os.path.join(out, "bilevel_group4.tif"), compression="group4")  # min-is-white
    expect("bilevel_group4.tif", bits[None].astype(np.uint8), "uint1", 1.0)

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


def dump(path, out):
    with tifffile.TiffFile(path) as t:
        a = t.asarray()
        ij = t.imagej_metadata or {}
        page = t.pages[0]
        xres = page.tags["XResolution"].value
    with open(out, "w") as f:
        json.dump({"shape": list(a.shape), "dtype": str(a.dtype), "values": [float(x) for x in a.ravel()],
                   "x_per_unit": xres[0] / xres[1], "unit": ij.get("unit", ""), "spacing": ij.get("spacing", 0)}, f)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--dump":
        dump(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
