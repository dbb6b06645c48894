#!/usr/bin/env bash
# Fetches the four 128x128x64 chest CT volumes with their lung masks (CC BY-NC
# 4.0; the dbmi-pitt/DataScienceCourse tutorial, ImageSegmentation/) into DEST
# and writes DEST/lung3d.csv for `unet train --data DEST/lung3d.csv`. Needs git
# and network access.
set -euo pipefail
dest=${1:-datasets/lung3d}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone --depth 1 --filter=blob:none --sparse https://github.com/dbmi-pitt/DataScienceCourse "$tmp/course"
git -C "$tmp/course" sparse-checkout set ImageSegmentation
mkdir -p "$dest"
find "$tmp/course/ImageSegmentation" -name 'id*-128x128x64*.nii.gz' -exec cp {} "$dest/" \;
"$(dirname "$0")/lung3d_manifest.sh" "$dest" > "$dest/lung3d.csv"
echo "lung3d in $dest: $(($(wc -l < "$dest/lung3d.csv") - 1)) volumes, manifest $dest/lung3d.csv"
