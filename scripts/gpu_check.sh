#!/usr/bin/env bash
# On a CUDA machine (H100/H200, torch 2.11 in python3, the C++ libraries installed): builds chatmill with its
# CUDA sources, runs the test suite (the GPU tests run instead of skipping) and the GPU benchmarks, and
# writes logs and results into OUTDIR. Usage: bash scripts/gpu_check.sh OUTDIR
# (Carry .deps from scripts/fetch_gpu_deps.sh for the packages the GPU image lacks.)
set -uo pipefail
OUT=${1:?usage: scripts/gpu_check.sh OUTDIR}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
# Packages the image lacks, carried as .debs (scripts/fetch_gpu_deps.sh), unpacked into a private prefix.
EXTRA_PREFIX=""
if ls .deps/*.deb >/dev/null 2>&1; then
  mkdir -p .deps/root
  for f in .deps/*.deb; do dpkg -x "$f" .deps/root; done
  R="$PWD/.deps/root"
  export CPATH="$R/usr/include${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$R/usr/lib/x86_64-linux-gnu${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$R/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  EXTRA_PREFIX=";$R/usr;$R/usr/lib/x86_64-linux-gnu/cmake"
fi
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
{
  cmake -S . -B build-gpu "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX$EXTRA_PREFIX" \
    -DCHATMILL_CUDA=ON -DTORCH_CUDA_ARCH_LIST=9.0 -DPython3_EXECUTABLE="$(command -v python3)" &&
  cmake --build build-gpu -j "$(nproc)"
} > "$OUT/build.log" 2>&1 || { echo "build failed"; tail -50 "$OUT/build.log"; exit 1; }
echo "build ok"

# Tests: the whole suite (GPU tests included); its summary goes to the log.
(cd build-gpu && ctest -j 8 --output-on-failure --timeout 600) > "$OUT/tests.log" 2>&1
echo "tests: $(grep -E 'tests passed|tests failed' "$OUT/tests.log" | tail -1)"
grep -E '^\s*[0-9]+ - ' "$OUT/tests.log" | head -20
build-gpu/tests/chatmill_tests --gtest_filter='Gpu*' > "$OUT/gpu_tests.log" 2>&1
grep -E 'max|PASSED|FAILED|OK \]|SKIPPED' "$OUT/gpu_tests.log" | head -40

# Benchmarks: 7B-shaped bf16, batch 1 and 16, chatmill vs HF transformers in the same run.
python3 bench/run_gpu.py --bin build-gpu --out "$OUT/gpu_generate.jsonl" 2>&1 | tee "$OUT/bench.md"
