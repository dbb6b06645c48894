#!/usr/bin/env bash
# Compiles every CUDA source of the project against CUDA 12, for sm_70 (V100) and
# sm_80 (A100). The main build uses CUDA 13, whose nvcc can no longer target
# sm_70: without this check a V100/A100 build (CUDA 12) could break unseen.
#
# No CUDA 12 toolkit is installed: clang 19 compiles the .cu files (ptxas from
# PyPI's nvidia-cuda-nvcc-cu12 assembles them for each arch) and g++ the host
# .cpp files that use CUDA, cuDNN or NCCL. The headers come from PyPI's
# nvidia-*-cu12 wheels, of which only include/, bin/ptxas and libdevice are kept
# (about 60 MB), laid out as a CUDA installation in .cuda12/cuda (git-ignored).
# Objects only (in a temporary folder): these wheels have no nvlink or fatbinary,
# so clang's new offload driver with -fgpu-rdc embeds the cubins itself.
set -euo pipefail
cd "$(dirname "$0")/.."
cuda=$PWD/.cuda12/cuda
archs=(sm_70 sm_80)

apt_packages=(clang-19 clang-tools-19)  # clang-tools-19: clang-offload-packager
if ! dpkg -s "${apt_packages[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# cudnn-jit has the same headers as nvidia-cudnn-cu12 in a tenth of the download.
wheels=(nvidia-cuda-runtime-cu12==12.9.79 nvidia-cuda-nvcc-cu12==12.9.86
        nvidia-cuda-cccl-cu12==12.9.27 nvidia-cublas-cu12==12.9.1.4
        nvidia-cudnn-jit-cu12==9.27.0.42 nvidia-nccl-cu12==2.27.3)
if [[ "$(cat "$cuda/.wheels" 2>/dev/null)" != "${wheels[*]}" ]]; then
  echo "cuda12: downloading ${wheels[*]}"
  python3 -m pip download -q --no-deps --no-cache-dir --only-binary=:all: -d "$tmp/wheels" "${wheels[@]}"
  rm -rf "$cuda"
  python3 - "$cuda" "$tmp"/wheels/*.whl <<'EOF'
import os, shutil, sys, zipfile
keep = lambda p: p[0] == "include" or p in (["bin", "ptxas"], ["nvvm", "libdevice", "libdevice.10.bc"])
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as z:
        for entry in z.infolist():
            path = entry.filename.split("/")[2:]  # nvidia/<package>/...
            if path and keep(path) and not entry.is_dir() and path[-1] != "__init__.py":
                out = os.path.join(sys.argv[1], *path)
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with z.open(entry) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
EOF
  chmod +x "$cuda/bin/ptxas"
  echo "${wheels[*]}" >"$cuda/.wheels"
fi

defines=(-DUNET_CUDA=1 -DNDEBUG -DUNET_BINARY='"unet"' -DUNET_SOURCE_DIR="\"$PWD\"" -DUNET_VERSION='"cuda12"')
cu_flags=(-x cuda --cuda-path="$cuda" "${archs[@]/#/--cuda-gpu-arch=}" --offload-new-driver -fgpu-rdc
          -Wno-unknown-cuda-version -std=c++17 -O3 -I. "${defines[@]}")
cpp_flags=(-std=c++17 -O0 -fopenmp -Wall -Wextra -I. -isystem "$cuda/include" "${defines[@]}")

# Every .cu, and every .cpp that calls CUDA or depends on UNET_CUDA.
mapfile -t cu_files < <(git ls-files -co --exclude-standard 'kernels/*.cu')
mapfile -t cpp_files < <(git ls-files -co --exclude-standard '*.cpp' |
  xargs grep -lE 'UNET_CUDA|cuda_check\.h|device_buffer\.h|#include <(cuda|cudnn|cublas|nccl)')

failed=0
compile() {  # compile <file> <compiler and flags...>
  local file=$1 obj="$tmp/obj/${1//\//_}.o"
  shift
  mkdir -p "$tmp/obj"
  if "$@" -c "$file" -o "$obj"; then echo "ok     $file"; else echo "FAILED $file"; failed=$((failed + 1)); fi
}
for f in "${cu_files[@]}"; do compile "$f" clang++-19 "${cu_flags[@]}"; done
((failed)) || ar rcs "$tmp/libunet_kernels_cuda12.a" "$tmp"/obj/kernels_*.cu.o
for f in "${cpp_files[@]}"; do compile "$f" g++ "${cpp_flags[@]}"; done

total=$((${#cu_files[@]} + ${#cpp_files[@]}))
if ((failed)); then
  echo "cuda12: $failed of $total files failed to compile for ${archs[*]}"
  exit 1
fi
echo "cuda12: $total files compiled for ${archs[*]}"
