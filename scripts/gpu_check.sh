#!/usr/bin/env bash
# On a CUDA machine (H100/H200, torch 2.11 in python3, the C++ libraries installed): builds chatmill with its
# CUDA sources, runs the GPU tests, the GPU benchmarks, then the whole test suite, and writes logs and results
# into OUTDIR. Stages run in order of value, each under what is left of a time budget (GPU_CHECK_BUDGET_S,
# default 570 s, inside the device tool's 600 s per call), so a slow stage never costs the results before it.
# Usage: bash scripts/gpu_check.sh OUTDIR   (carry .deps from scripts/fetch_gpu_deps.sh)
set -uo pipefail
OUT=${1:?usage: scripts/gpu_check.sh OUTDIR}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
T0=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-570}
left() { echo $((BUDGET - ($(date +%s) - T0))); }
stage() { echo "== $1 at $(($(date +%s) - T0)) s (left $(left) s)" | tee -a "$OUT/stages.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')

# Debian packages the image lacks (.deps/*.deb), unpacked into a private prefix; links to shared libraries the
# prefix lacks point at the system's copies (libssl.so -> the system's libssl.so.3).
EXTRA_PREFIX=""
if ls .deps/*.deb >/dev/null 2>&1; then
  R="$PWD/.deps/root"
  mkdir -p "$R"
  for f in .deps/*.deb; do dpkg -x "$f" "$R"; done
  L="$R/usr/lib/x86_64-linux-gnu"
  for link in "$L"/*.so; do
    if [ -L "$link" ] && [ ! -e "$link" ]; then
      # The exact file (libssl.so.3), else the system's own version of that library (libzstd.so.1.5.5 for 1.5.4).
      target=$(readlink "$link")
      sys=$(ls -1 "/usr/lib/x86_64-linux-gnu/$target" /usr/lib/x86_64-linux-gnu/"${target%%.so.*}".so.[0-9]* 2>/dev/null | head -1)
      [ -n "$sys" ] && ln -sf "$sys" "$link"
    fi
  done
  export CPATH="$R/usr/include${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$L${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$L${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_PATH="$L/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  EXTRA_PREFIX=";$R/usr;$L/cmake"
fi
# The Python oracles (transformers, ...) where the image lacks them: carried wheels, unpacked onto PYTHONPATH.
if ! python3 -c 'import transformers' 2>/dev/null && [ -d .deps/wheels ]; then
  python3 scripts/unpack_wheels.py .deps/wheels "$PWD/.deps/py" > "$OUT/wheels.log" 2>&1
  export PYTHONPATH="$PWD/.deps/py${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1 | tee "$OUT/python.txt"

stage build
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
{
  cmake -S . -B build-gpu "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX$EXTRA_PREFIX" \
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5 -DCHATMILL_CUDA=ON -DTORCH_CUDA_ARCH_LIST=9.0 -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DCMAKE_CUDA_COMPILER="$NVCC" -DPython3_EXECUTABLE="$(command -v python3)" &&
  timeout "$(left)" cmake --build build-gpu -j "$(nproc)"
} > "$OUT/build.log" 2>&1 || { echo "build failed"; grep -E "error|Error" "$OUT/build.log" | head -30; tail -30 "$OUT/build.log"; exit 1; }
echo "build ok"

stage "reference models (HF transformers)"
timeout 120 python3 tests/model/make_reference.py build-gpu/testdata > "$OUT/reference.log" 2>&1 || tail -5 "$OUT/reference.log"

stage "GPU tests"
CHATMILL_TESTDATA="$PWD/build-gpu/testdata" timeout 240 build-gpu/tests/chatmill_tests --gtest_filter='Gpu*' \
  > "$OUT/gpu_tests.log" 2>&1
grep -E '^\[ +(OK|FAILED|SKIPPED) +\]|Failure|Expected|Which is|max|: kernel |varlen vs' "$OUT/gpu_tests.log" | head -120
(cd build-gpu && timeout 240 ctest -R '^train_gpu$' --output-on-failure) > "$OUT/train_gpu.log" 2>&1
grep -E 'ok   |FAIL |relative|tests passed|tests failed' "$OUT/train_gpu.log" | head -20

stage "kernel benchmark"
timeout 120 build-gpu/bench/bench_kernels --out "$OUT/gpu_kernels.jsonl" 2>&1 | tee "$OUT/kernels.md"
stage "GPU decode benchmark"
timeout $(($(left) - 150)) python3 bench/run_gpu.py --bin build-gpu --part decode --out "$OUT/gpu_generate.jsonl" 2>&1 |
  tee "$OUT/bench.md"
stage "GPU training benchmark"
timeout $(($(left) - 20)) python3 bench/run_gpu.py --bin build-gpu --part train --out "$OUT/gpu_train.jsonl" 2>&1 |
  tee -a "$OUT/bench.md"

if [ "$(left)" -gt 60 ]; then
  stage "whole test suite"
  (cd build-gpu && timeout $(($(left) - 10)) ctest -j 8 --output-on-failure --timeout 300) > "$OUT/tests.log" 2>&1
  echo "tests: $(grep -E 'tests passed|tests failed' "$OUT/tests.log" | tail -1)"
  grep -E '^\s*[0-9]+ - ' "$OUT/tests.log" | head -20
fi
stage done
