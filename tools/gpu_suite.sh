#!/usr/bin/env bash
# The whole GPU verification in one command, for a machine with an NVIDIA GPU.
#
#   tools/gpu_suite.sh fetch        on a Debian machine with apt (no GPU needed):
#                                   downloads the .debs the GPU machine lacks into .deps/
#   tools/gpu_suite.sh run [DIR]    on the GPU machine: unpacks .deps/ into /opt/deps
#                                   when the -dev packages are missing, builds for the
#                                   GPU at hand, runs every test, compute-sanitizer
#                                   (memcheck, racecheck) over the GPU tests, the kernel
#                                   benchmarks, `unet bench --gpus 1`, unet.cu against the
#                                   PyTorch and MONAI baselines on this GPU (bench/compare.py,
#                                   where its python3 has PyTorch), and writes
#                                   DIR/report.md (+ JSON).
#
# cuDNN and NCCL may come from the toolkit or from PyTorch's pip wheels
# (nvidia-cudnn-*, nvidia-nccl-*); both are looked for.
set -euo pipefail
cd "$(dirname "$0")/.."

deps=(libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian
      libopenblas-openmp-dev libopenblas0-openmp libopenblas-dev libgfortran5 libdnnl-dev libdnnl2 ocl-icd-libopencl1
      libnifti2-dev libnifti2-2 libniftiio-dev libniftiio2 libnifticdf-dev libnifticdf2 libznz-dev libznz3
      libpng-dev libpng16-16 zlib1g-dev nlohmann-json3-dev libcli11-dev libxxhash-dev libxxhash0
      libtiff-dev libtiff6 libwebp7 libzstd1 liblzma5 liblerc4 libjbig0 libjpeg62-turbo libdeflate0
      libonnx-dev libonnx1 libonnxifi libprotobuf-dev libprotobuf32 libprotobuf-lite32
      libgloo-dev libgloo0 libhiredis0.14 libibverbs1 libnl-3-200 libnl-route-3-200)

fetch() {
  mkdir -p .deps
  (cd .deps && apt-get download "${deps[@]}")
  ls -l .deps
}

# Unpacks the carried .debs into /opt/deps (never into /) and points CMake at them.
unpack() {
  local prefix=/opt/deps
  mkdir -p "$prefix"
  for f in .deps/*.deb; do dpkg -x "$f" "$prefix"; done
  local lib=$prefix/usr/lib/x86_64-linux-gnu
  ln -sf openblas-openmp/libopenblas.so.0 "$lib/libopenblas.so"
  ln -sf libopenblas.so "$lib/libblas.so"
  export CMAKE_PREFIX_PATH=$prefix/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export CMAKE_LIBRARY_PATH=$lib:$lib/openblas-openmp
  export CMAKE_INCLUDE_PATH=$prefix/usr/include/x86_64-linux-gnu/openblas-openmp:$prefix/usr/include
  export LD_LIBRARY_PATH=$lib:$lib/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

# cuDNN and NCCL from PyTorch's pip wheels (nvidia.cudnn, nvidia.nccl) when the
# toolkit has none: a wheel has only the versioned .so, so CMake gets an
# unversioned link beside its headers, under <NAME>_ROOT.
from_wheel() {  # module header soname root_variable
  local module=$1 header=$2 soname=$3 var=$4 wheel
  [ -e "/usr/local/cuda/include/$header" ] && return
  wheel=$(python3 -c "import nvidia.$module, os; print(os.path.dirname(nvidia.$module.__file__))" 2>/dev/null) || return
  mkdir -p "/opt/deps/$module/lib"
  ln -sf "$wheel/include" "/opt/deps/$module/include"
  ln -sf "$wheel/lib/$soname" "/opt/deps/$module/lib/${soname%.*}"
  export "$var=/opt/deps/$module"
  export LD_LIBRARY_PATH=$wheel/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

run() {
  local out=${1:-gpu-report}
  mkdir -p "$out"
  local report=$out/report.md
  [ -e /usr/include/gtest/gtest.h ] || unpack
  from_wheel cudnn cudnn.h libcudnn.so.9 CUDNN_ROOT
  from_wheel nccl nccl.h libnccl.so.2 NCCL_ROOT
  export PATH=/usr/local/cuda/bin:$PATH
  {
    echo "# unet.cu GPU suite, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo '```'; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -2; echo '```'
  } >"$report"

  local status=0
  section() { echo -e "\n## $1\n\`\`\`" >>"$report"; }
  endsection() { echo '```' >>"$report"; }

  section "build"
  if cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DUNET_CUDA=ON \
       -DCMAKE_CUDA_ARCHITECTURES=native >"$out/build.log" 2>&1 &&
     cmake --build build-gpu -j "$(nproc)" >>"$out/build.log" 2>&1; then
    echo "build: ok" >>"$report"
  else
    tail -40 "$out/build.log" >>"$report"; endsection; echo "build failed: $report"; return 1
  fi
  endsection

  section "tests (ctest, all labels)"
  ctest --test-dir build-gpu --output-on-failure -j 8 >"$out/ctest.log" 2>&1 || status=1
  tail -25 "$out/ctest.log" >>"$report"
  endsection

  for tool in memcheck racecheck; do
    section "compute-sanitizer --tool $tool (GPU tests)"
    compute-sanitizer --tool "$tool" --error-exitcode 1 build-gpu/tests/test_gpu >"$out/$tool.log" 2>&1 || status=1
    tail -8 "$out/$tool.log" >>"$report"
    endsection
  done

  section "GPU kernel benchmarks (fraction of HBM bandwidth: UNET_PEAK_GBPS, default an H100 SXM's 3350)"
  UNET_PEAK_GBPS=${UNET_PEAK_GBPS:-3350} build-gpu/bench/unet_gpu_bench --benchmark_min_time=0.2 \
    --benchmark_out="$out/gpu_kernels.json" --benchmark_out_format=json >"$out/gpu_bench.log" 2>&1 || status=1
  grep -E "^BM_|^-|Benchmark" "$out/gpu_bench.log" >>"$report" || true
  endsection

  section "CPU kernel benchmarks"
  build-gpu/bench/unet_kernel_bench --benchmark_min_time=0.2 --benchmark_out="$out/kernels.json" \
    --benchmark_out_format=json >"$out/bench.log" 2>&1 || status=1
  grep -E "^BM_|^-|Benchmark" "$out/bench.log" >>"$report" || true
  endsection

  section "unet bench --gpus 1 (the issue's target shapes; fp32, tf32, bf16, fp16, bf16 without CUDA Graphs)"
  local shape precision
  for shape in "--size 512x512 --filters 64 --depth 4 --batch-size 8" "--size 256x256 --filters 32 --depth 4 --batch-size 8" \
               "--dims 3 --size 128x128x64 --filters 32 --depth 4 --batch-size 2"; do
    # Every precision with the passes captured as CUDA Graphs; bf16 without them: the graphs' gain.
    for precision in "fp32" "tf32" "bf16" "fp16" "bf16 --no-cuda-graphs"; do
      # shellcheck disable=SC2086
      build-gpu/tools/unet bench --gpus 1 --precision $precision $shape --steps 10 --warmup 3 \
        >>"$out/unet_bench.jsonl" 2>>"$out/unet_bench.log" || { status=1; echo "failed: $precision $shape" >>"$report"; }
    done
  done
  cat "$out/unet_bench.jsonl" >>"$report" || true
  endsection

  section "unet.cu against PyTorch and MONAI on this GPU (bench/compare.py)"
  if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    # bf16: the issue's targets are set against PyTorch's AMP.
    python3 bench/compare.py --device cuda --precision bf16 --unet build-gpu/tools/unet \
      --configs 2d-512-f64,2d-256-f32,3d-128x128x64-f32 \
      --steps 10 --warmup 3 --json "$out/compare.jsonl" >>"$report" 2>>"$out/compare.log" || status=1
  else
    echo "skipped: python3 here has no PyTorch with CUDA" >>"$report"
  fi
  endsection

  echo "report: $report (status $status)"
  return $status
}

# --- pack (here) and check (on the GPU machine, no build) --------------------
# Libraries the GPU machine brings itself: glibc's, the compiler's runtime, and
# CUDA's (its toolkit, with cuDNN and NCCL from PyTorch's wheels).
provided='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libresolv|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libcudnn[a-z_]*|libnccl)\.so'
archive=.gpu/unet-gpu.tar.gz

# pack [BUILD]: the GPU check's binaries (from BUILD, else a Release sm_90 build
# of only them in build-pack) with every shared library they need that the GPU
# machine lacks, into $archive (at most 50 MiB).
pack() {
  local build=${1:-build-pack}
  if [ -z "${1:-}" ]; then
    export PATH=/usr/local/cuda/bin:$PATH
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DUNET_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
    cmake --build "$build" -j "$(nproc)" --target test_gpu unet unet_gpu_bench
  fi
  local stage; stage=$(mktemp -d)/unet-gpu
  mkdir -p "$stage/bin" "$stage/lib" .gpu
  cp "$build/tests/test_gpu" "$build/tools/unet" "$build/bench/unet_gpu_bench" "$stage/bin/"
  ldd "$stage"/bin/* | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u | while read -r name path; do
    [[ $name =~ $provided ]] || cp -L "$path" "$stage/lib/$name"
  done
  git rev-parse --short HEAD >"$stage/COMMIT" 2>/dev/null || true
  check_complete "$stage"
  tar -czf "$archive" -C "$(dirname "$stage")" unet-gpu
  local mib=$(( $(stat -c %s "$archive") >> 20 ))
  ((mib <= 50)) || { echo "pack: $archive is $mib MiB, over the 50 MiB a device call carries" >&2; return 1; }
  echo "pack: $archive ($mib MiB): $(ls "$stage/bin" | tr '\n' ' ')and $(ls "$stage/lib" | wc -l) libraries"
}

# Every library an ELF file of the package needs is in it or provided there.
check_complete() {
  local f lib missing=0
  for f in "$1"/bin/* "$1"/lib/*; do
    for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      [[ $lib =~ $provided ]] || [ -e "$1/lib/$lib" ] || { echo "pack: $(basename "$f") needs $lib, not packed" >&2; missing=1; }
    done
  done
  return $missing
}

# check OUT: on the GPU machine, from the carried $archive: every step under its
# own timeout, logs under OUT, a table last. Without a GPU it stops at the
# first CUDA call, saying so, and exits 3.
check() {
  local out=${1:?usage: tools/gpu_suite.sh check OUT}
  mkdir -p "$out"
  local dir; dir=$(mktemp -d)
  tar -xzf "$archive" -C "$dir"
  local pkg=$dir/unet-gpu wheels
  wheels=$(python3 -c 'import nvidia, os; print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in __import__("glob").glob(d + "/**/lib*.so*", recursive=True)})))' 2>/dev/null || true)
  export LD_LIBRARY_PATH=$pkg/lib${wheels:+:$wheels}:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export UNET_BINARY=$pkg/bin/unet UNET_REQUIRE_GPU=1
  local table=$out/table.md status=0
  echo "| step | result | seconds |" >"$table"; echo "|---|---|---|" >>"$table"
  step() {  # step NAME SECONDS COMMAND...: its output in OUT/NAME.log
    local name=$1 limit=$2 t0=$SECONDS rc=0; shift 2
    timeout "$limit" "$@" >"$out/$name.log" 2>&1 || rc=$?
    local result=ok
    ((rc == 0)) || { result="failed ($rc)"; ((rc == 124)) && result="timed out"; status=1; }
    grep -q "Device not supported" "$out/$name.log" && result="unavailable (compute-sanitizer: Device not supported)"
    echo "| $name | $result | $((SECONDS - t0)) |" >>"$table"
    return $rc
  }
  if ldd "$pkg"/bin/* | grep "not found" >"$out/missing.log"; then
    echo "check: libraries not found:"; cat "$out/missing.log"; return 1
  fi
  if ! step versions 30 "$pkg/bin/test_gpu" --gtest_filter='GpuEnvironment.*'; then
    grep -m1 -o "no CUDA GPU on this machine[^:]*" "$out/versions.log" && { echo "check: no GPU here; nothing checked"; return 3; }
  fi
  grep -h "^versions:" "$out/versions.log" || true
  step gpu-tests 150 "$pkg/bin/test_gpu" --gtest_output="xml:$out/gpu_tests.xml" || true
  step memcheck 60 compute-sanitizer --tool memcheck --target-processes application-only --error-exitcode 1 \
    "$pkg/bin/test_gpu" --gtest_filter='GpuKernels.*:Gpu.*:GpuPrecision.*:GpuModel.TrainingStepMatchesCpuFp32:-GpuPrecision.Elementwise*' || true
  step racecheck 30 compute-sanitizer --tool racecheck --target-processes application-only --error-exitcode 1 \
    "$pkg/bin/test_gpu" --gtest_filter='GpuKernels.*:Gpu.*:-GpuKernels.Cudnn*' || true
  step bench 120 python3 bench/compare.py --device cuda --precision tf32,bf16 --peak-tflops 989 --unet "$pkg/bin/unet" \
    --baselines unet-amp,unet-tf32 --steps 10 --warmup 3 --timeout 40 --json "$out/compare.jsonl" || true
  step channels-last 30 "$pkg/bin/unet_gpu_bench" --benchmark_filter=BM_GpuConvLayoutBf16 --benchmark_min_time=0.1 || true
  step train 50 "$pkg/bin/unet" train --gpus 1 --run-dir "$out/run" || true
  grep "^|" "$out/bench.log" || true
  grep -h "Dice" "$out/train.log" | tail -1 || true
  cat "$table"
  return $status
}

case "${1:-}" in
  fetch) fetch ;;
  run) shift; run "$@" ;;
  pack) shift; pack "$@" ;;
  check) shift; check "$@" ;;
  *) echo "usage: tools/gpu_suite.sh pack [BUILD] | check OUT | fetch | run [DIR]" >&2; exit 2 ;;
esac
