#!/usr/bin/env bash
# The readers' libFuzzer targets (tests/fuzz: NIfTI, PNG, TIFF, safetensors,
# the dataset CSV and dataset.json), built with clang and AddressSanitizer in
# build-fuzz (the readers instrumented too) and run UNET_FUZZ_SECONDS (default
# 30) each, from seed corpora that other tools wrote (nibabel, pypng, tifffile
# and Pillow, Python's safetensors, csv and json). A crash, a leak, a hang or
# an exception other than FileError fails it; the input is left in
# build-fuzz/findings/. The mutations are seeded (-seed=1): a run repeats the
# last one's sequence from the same corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${UNET_FUZZ_SECONDS:-30}
targets=(nifti png tiff safetensors csv dataset_json)
python=python3
[ -x .venv/bin/python3 ] && python=.venv/bin/python3

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNET_FUZZ=ON \
  -DUNET_CUDA=OFF -DUNET_BENCH=OFF -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link,address > /dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

seeds=build-fuzz/seeds
rm -rf "$seeds" && mkdir -p "$seeds" build-fuzz/findings
$python tests/data/write_nifti.py "$seeds/nifti" > /dev/null
$python tests/data/write_png.py "$seeds/png" > /dev/null
$python tests/data/write_tiff.py "$seeds/tiff" > /dev/null
$python tests/fuzz/write_seeds.py "$seeds"
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus_$t  # kept between runs: it grows
  mkdir -p "$corpus"
  find "$seeds/$t" -type f -size -1024k -exec cp {} "$corpus/" \;
  echo "fuzz: $t for ${seconds} s from $(ls "$corpus" | wc -l) inputs"
  log=build-fuzz/fuzz_$t.log
  if ! build-fuzz/tests/fuzz_$t -seed=1 -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="build-fuzz/findings/$t-" "$corpus" > "$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $t failed (the input: $(ls build-fuzz/findings/$t-* 2>/dev/null || echo none saved)); log $log" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units" "$log" | sed "s/^/fuzz: $t: /"
done
echo "fuzz: no findings"
