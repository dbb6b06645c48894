#!/usr/bin/env bash
# The test command: installs what the build needs (tools/setup.sh), builds
# everything (the CUDA backend too where nvcc is found: every .cu must compile
# even where no GPU runs it), starts a one-node Slurm for the tests of slurm/
# (as root), compiles the CUDA sources against CUDA 12 for V100 and A100 too
# (tools/cuda12_compile.sh), runs every test (the fault-injection suite, label
# faults, among them), then builds the CPU engine with AddressSanitizer +
# UndefinedBehaviorSanitizer and runs the CPU tests again, and last fuzzes
# every reader for a fixed time each (tools/fuzz.sh: a finding fails the run).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
jobs=$(nproc)

# One CUDA architecture proves that every .cu compiles; tools/gpu_suite.sh builds
# for the GPU at hand.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="${UNET_CUDA_ARCHITECTURES:-90}"
cmake --build build -j "$jobs"
# CUDA 13 cannot target V100 (sm_70): the CUDA sources also compile against
# CUDA 12 for sm_70 and sm_80 (clang 19 and PyPI's CUDA 12 headers).
tools/cuda12_compile.sh
# The Slurm tests need a cluster: as root, this machine becomes a one-node one.
if [ "$(id -u)" -eq 0 ]; then
  tools/slurm_local.sh start || echo "slurm: the cluster did not start; the Slurm tests will skip"
fi
ctest --test-dir build --output-on-failure -j "$jobs"

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNET_SANITIZE=ON \
  -DUNET_CUDA=OFF -DUNET_BENCH=OFF
cmake --build build-asan -j "$jobs"
ctest --test-dir build-asan -L cpu --output-on-failure -j "$jobs"

tools/fuzz.sh
