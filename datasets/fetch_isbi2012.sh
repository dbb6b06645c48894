#!/usr/bin/env bash
# Fetches the ISBI 2012 EM segmentation training slices as PNG (the form the
# zhixuhao/unet repository redistributes; Cardona et al. 2010, free for research)
# into DEST/train/image/N.png and DEST/train/label/N.png, N = 0..29, the layout
# `unet train --data DEST/train` reads. Needs git and network access.
set -euo pipefail
dest=${1:-datasets/isbi2012}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone --depth 1 https://github.com/zhixuhao/unet "$tmp/unet"
mkdir -p "$dest/train/image" "$dest/train/label" "$dest/test"
cp "$tmp"/unet/data/membrane/train/image/*.png "$dest/train/image/"
cp "$tmp"/unet/data/membrane/train/label/*.png "$dest/train/label/"
cp "$tmp"/unet/data/membrane/test/[0-9]*.png "$dest/test/" 2>/dev/null || true
echo "ISBI 2012 in $dest: $(ls "$dest/train/image" | wc -l) labelled slices (membrane = 0 in the labels)"
