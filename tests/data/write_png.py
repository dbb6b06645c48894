#!/usr/bin/env python3
"""Test files for test_png, written by pypng (an independent implementation).

  write_png.py OUTDIR          writes every bit depth and colour type (palette and
                               interlaced included) into OUTDIR, and OUTDIR/expected.json:
                               width, height, channels, full_scale and the sample values
                               channels first (what our reader must return)
  write_png.py --dump FILE OUT.json
                               what pypng reads from FILE (round trips of our writer)
"""
import json
import os
import random
import sys

import png

W, H = 7, 5  # odd sizes, so that packed rows of 1, 2 and 4 bits end mid-byte


def planes(rows, channels):
    """Interleaved rows -> channels-first flat list."""
    out = []
    for c in range(channels):
        for row in rows:
            out.extend(int(v) for v in list(row)[c::channels])
    return out


def main(out):
    rnd = random.Random(11)
    os.makedirs(out, exist_ok=True)
    expected = {}

    def write(name, channels, bitdepth, interlace=False, greyscale=True, alpha=False):
        top = 2 ** bitdepth - 1
        rows = [[rnd.randint(0, top) for _ in range(W * channels)] for _ in range(H)]
        rows[0][0] = top  # the extremes of the range
        rows[0][1] = 0
        w = png.Writer(W, H, greyscale=greyscale, alpha=alpha, bitdepth=bitdepth, interlace=interlace)
        with open(os.path.join(out, name), "wb") as f:
            w.write(f, rows)
        expected[name] = {"width": W, "height": H, "channels": channels, "full_scale": top,
                          "datatype": f"uint{bitdepth}", "values": planes(rows, channels)}

    for bits in (1, 2, 4, 8, 16):
        write(f"gray{bits}.png", 1, bits)
    write("gray1_interlaced.png", 1, 1, interlace=True)
    write("gray8_interlaced.png", 1, 8, interlace=True)
    write("gray16_interlaced.png", 1, 16, interlace=True)
    write("graya8.png", 2, 8, alpha=True)
    write("graya16.png", 2, 16, alpha=True)
    write("rgb8.png", 3, 8, greyscale=False)
    write("rgb16.png", 3, 16, greyscale=False)
    write("rgb8_interlaced.png", 3, 8, greyscale=False, interlace=True)
    write("rgba8.png", 4, 8, greyscale=False, alpha=True)
    write("rgba16_interlaced.png", 4, 16, greyscale=False, alpha=True, interlace=True)

    # Palettes expand to RGB, or to RGBA when they carry transparency.
    for name, bits, entries, with_alpha, interlace in [("palette8.png", 8, 200, False, False),
                                                       ("palette4_alpha.png", 4, 16, True, False),
                                                       ("palette2_interlaced.png", 2, 4, False, True)]:
        pal = [tuple(rnd.randint(0, 255) for _ in range(4 if with_alpha else 3)) for _ in range(entries)]
        idx = [[rnd.randrange(entries) for _ in range(W)] for _ in range(H)]
        w = png.Writer(W, H, palette=pal, bitdepth=bits, interlace=interlace)
        with open(os.path.join(out, name), "wb") as f:
            w.write(f, idx)
        ch = 4 if with_alpha else 3
        rows = [[v for i in row for v in pal[i]] for row in idx]
        expected[name] = {"width": W, "height": H, "channels": ch, "full_scale": 255, "datatype": "uint8",
                          "values": planes(rows, ch)}

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


def dump(path, out):
    w, h, rows, info = png.Reader(filename=path).read()
    rows = [list(r) for r in rows]
    ch = info["planes"]
    with open(out, "w") as f:
        json.dump({"width": w, "height": h, "channels": ch, "bitdepth": info["bitdepth"],
                   "greyscale": info["greyscale"], "alpha": info["alpha"], "values": planes(rows, ch)}, f)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--dump":
        dump(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
