#!/usr/bin/env bash
# Installs everything unet.cu needs to build and test: Debian's packages, and
# into the project's .venv (Debian's python3 and its packages, plus PyPI) the
# two Python packages Debian lacks, onnxruntime and safetensors, which the tests
# use to read what `unet export` and `unet train` write.
# Safe to run again: what is already present is not fetched twice.
# The CUDA toolkit is not a Debian package; when nvcc is on PATH (or under
# /usr/local/cuda) the build compiles the CUDA backend too, otherwise it builds
# the CPU engine alone.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-openmp-dev          # BLAS: the CPU convolutions' reference path, the up-convolutions
  libdnnl-dev                     # oneDNN: the CPU convolutions (AVX2, AVX-512, AVX-512 BF16, AMX kernels)
  libgtest-dev libgmock-dev       # tests
  libbenchmark-dev                # benchmarks
  libnifti2-dev zlib1g-dev        # NIfTI-1/2 through nifti_clib
  libpng-dev                      # PNG
  libtiff-dev                     # TIFF stacks (microscopy, EM)
  nlohmann-json3-dev              # dataset.json, checkpoint metadata
  libxxhash-dev                   # the digest pairing a checkpoint's state with its weights
  libonnx-dev libprotobuf-dev     # unet export --onnx
  libgloo-dev                     # data parallelism between CPU processes
  libcli11-dev                    # the unet command line
  python3 python3-nibabel python3-png python3-numpy python3-venv  # test files written by other tools
  python3-scipy                   # the resampling tests' reference (scipy.ndimage.zoom)
  python3-tifffile python3-pil    # TIFF test files written by other tools
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

# Pinned: the versions the tests were written against.
python_packages=(onnxruntime==1.32.0 safetensors==0.8.0)
cd "$(dirname "$0")/.."
if ! .venv/bin/python3 -c 'import onnxruntime, safetensors' 2>/dev/null; then
  echo "setup: installing ${python_packages[*]} into .venv"
  /usr/bin/python3 -m venv --system-site-packages .venv
  .venv/bin/pip install -q --disable-pip-version-check "${python_packages[@]}"
fi
