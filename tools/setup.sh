#!/usr/bin/env bash
# Installs everything unet.cu needs to build and test, from Debian's packages.
# Safe to run again: packages already present are not fetched twice.
# The CUDA toolkit is not a Debian package; when nvcc is on PATH (or under
# /usr/local/cuda) the build compiles the CUDA backend too, otherwise it builds
# the CPU engine alone.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-openmp-dev          # BLAS for the CPU convolutions
  libgtest-dev libgmock-dev       # tests
  libbenchmark-dev                # benchmarks
  libnifti2-dev zlib1g-dev        # NIfTI-1/2 through nifti_clib
  libpng-dev                      # PNG
  nlohmann-json3-dev              # dataset.json, checkpoint metadata
  libcli11-dev                    # the unet command line
  python3 python3-nibabel python3-png python3-numpy   # test files written by other tools
  clang libclang-rt-14-dev        # libFuzzer targets for the readers
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#packages[@]} packages present"
fi
