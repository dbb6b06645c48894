#!/usr/bin/env bash
# Writes the CSV manifest `unet train --data` reads for the lung CT volumes:
# the tutorial's columns path,pathmsk, one row per idNNN-128x128x64.nii.gz with
# its -msk twin, as absolute paths (so the CSV may live anywhere).
#   datasets/lung3d_manifest.sh DIR > lung3d.csv
set -euo pipefail
dir=${1:?usage: lung3d_manifest.sh DIR (the folder with idNNN-128x128x64.nii.gz)}
echo "path,pathmsk"
found=0
for image in "$dir"/id*-128x128x64.nii.gz; do
  [ -e "$image" ] || break
  mask=${image%.nii.gz}-msk.nii.gz
  [ -e "$mask" ] || { echo "lung3d_manifest: $image has no mask $mask" >&2; exit 1; }
  echo "$(realpath "$image"),$(realpath "$mask")"
  found=$((found + 1))
done
[ "$found" -gt 0 ] || { echo "lung3d_manifest: no idNNN-128x128x64.nii.gz in $dir" >&2; exit 1; }
