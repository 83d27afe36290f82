#!/usr/bin/env bash
# On a CUDA machine (H100/H200, torch 2.11 in python3, the C++ libraries installed): builds chatmill with its
# CUDA sources, runs the GPU tests, the GPU benchmarks, then the whole test suite, and writes logs and results
# into OUTDIR. Stages run in order of value, each under what is left of a time budget (GPU_CHECK_BUDGET_S,
# default 570 s, inside the device tool's 600 s per call), so a slow stage never costs the results before it.
# With .deps/prebuilt.tar.gz (scripts/prebuild_gpu.sh) built from this very source (its hash is checked), it
# skips the compile and runs those binaries; if they do not run here, or the source differs, it builds as before.
# Usage: bash scripts/gpu_check.sh OUTDIR   (carry .deps from scripts/fetch_gpu_deps.sh and prebuild_gpu.sh)
set -uo pipefail
OUT=${1:?usage: scripts/gpu_check.sh OUTDIR}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
T0=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-570}
left() { echo $((BUDGET - ($(date +%s) - T0))); }
stage() { echo "== $1 at $(($(date +%s) - T0)) s (left $(left) s)" | tee -a "$OUT/stages.txt"; }
# `timeout` takes 0 as no limit and a negative number as a bad option: a stage with too little time left is
# skipped, saying so.
capped() {  # capped CAP SECONDS_TO_KEEP COMMAND...: runs COMMAND in what is left less SECONDS_TO_KEEP, at most CAP
  local cap=$1 t=$(($(left) - $2))
  shift 2
  [ "$t" -gt "$cap" ] && t=$cap
  if [ "$t" -gt 30 ]; then timeout "$t" "$@"; else echo "skipped: only $((t + 0)) s would be left for: $*"; fi
}
within() { capped "$BUDGET" "$@"; }  # within SECONDS_TO_KEEP COMMAND...: no cap but the budget
# The device tool returns at most 8 files from OUTDIR: at exit everything goes into results.tar.gz, and only the
# summaries stay beside it.
pack() {
  (cd "$OUT" && tar czf results.tar.gz --exclude results.tar.gz -- * &&
    ls | grep -v -x -E 'results.tar.gz|stages.txt|bench.md|kernels.md|gpu_tests.log|train_gpu.log|memcheck.log|tests.log' |
    xargs -r rm -f --)
}
trap pack EXIT
# GPU_CHECK_STAGES: the stages to run, e.g. "tests,kernels,decode" (default all: tests, kernels, decode, train,
# train_gpu, memcheck, suite); GPU_CHECK_QUICK=1 gives the decode benchmark its --quick.
want() { [ -z "${GPU_CHECK_STAGES:-}" ] || [[ ",$GPU_CHECK_STAGES," == *",$1,"* ]]; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')

# The Python oracles (transformers, ...) where the image lacks them: carried wheels, unpacked onto PYTHONPATH.
if ! python3 -c 'import transformers' 2>/dev/null && [ -d .deps/wheels ]; then
  python3 scripts/unpack_wheels.py .deps/wheels "$PWD/.deps/py" > "$OUT/wheels.log" 2>&1
  export PYTHONPATH="$PWD/.deps/py${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1 | tee "$OUT/python.txt"

# The test programs read these; CTest's own defaults name the build machine's paths when prebuilt.
# ../shared/data does not travel to the GPU machine: fetch_gpu_deps.sh copies it into .deps/shared/data.
SHARED="$PWD/.deps/shared/data"
[ -d "$SHARED" ] || SHARED="$PWD/../shared/data"
# The image lacks the `openai` package: check_server.py then skips its openai-client checks (elsewhere it fails).
export CHATMILL_TESTDATA="$PWD/build-gpu/testdata" CHATMILL_SOURCE_DIR="$PWD" CHATMILL_SHARED_DATA="$SHARED" \
  CHATMILL_OPTIONAL_ORACLES=1

# Prebuilt binaries: wrappers at the build tree's paths give them their carried libraries (and only them: Python
# keeps the system's), and the CTest files get this machine's paths.
use_prebuilt() {
  local P="$PWD/.deps/prebuilt" want have
  if [ -f .deps/prebuilt.tar.gz ]; then rm -rf "$P" && tar xzf .deps/prebuilt.tar.gz -C .deps || return 1; fi
  [ -f "$P/stamp" ] || return 1
  want=$(bash scripts/source_hash.sh)
  have=$(sed -n 's/^source_hash=//p' "$P/stamp")
  [ "$want" = "$have" ] || { echo "prebuilt binaries are of source $have, this tree is $want: building here"; return 1; }
  local torch_lib ld root build py shared e f
  torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  ld="$P/lib:$torch_lib:$torch_lib/../../nvidia/cu13/lib:/usr/local/cuda/lib64"
  rm -rf build-gpu && mkdir -p build-gpu
  for e in $(cat "$P/executables"); do
    mkdir -p "build-gpu/$(dirname "$e")"
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' "$ld" "$P/bin/$e" > "build-gpu/$e"
    chmod +x "build-gpu/$e" "$P/bin/$e"
  done
  root=$(sed -n 's/^root=//p' "$P/stamp"); build=$(sed -n 's/^build=//p' "$P/stamp")
  py=$(sed -n 's/^python=//p' "$P/stamp"); shared=$(sed -n 's/^shared=//p' "$P/stamp")
  (cd "$P/ctest" && find . -type f) | while read -r f; do
    mkdir -p "build-gpu/$(dirname "$f")"
    sed -e "s#$build#$PWD/build-gpu#g" -e "s#$root#$PWD#g" -e "s#$py#$(command -v python3)#g" \
      -e "s#$shared#$CHATMILL_SHARED_DATA#g" "$P/ctest/$f" > "build-gpu/$f"
  done
  if ! { build-gpu/chatmill --help && build-gpu/tests/chatmill_tests --gtest_list_tests; } > "$OUT/prebuilt_check.log" 2>&1; then
    echo "prebuilt binaries do not run here: building"; tail -5 "$OUT/prebuilt_check.log"
    LD_LIBRARY_PATH="$ld" ldd "$P/bin/chatmill" | grep "not found"
    rm -rf build-gpu
    return 1
  fi
  echo "prebuilt binaries of source $have run here"
}

# Debian packages the image lacks (.deps/*.deb), unpacked into a private prefix; links to shared libraries the
# prefix lacks point at the system's copies (libssl.so -> the system's libssl.so.3).
# Only the source build needs them.
unpack_debs() {
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
}

stage build
if ! use_prebuilt; then
  unpack_debs
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
fi

stage "reference models (HF transformers)"
timeout 120 python3 tests/model/make_reference.py build-gpu/testdata > "$OUT/reference.log" 2>&1 || tail -5 "$OUT/reference.log"

if want tests; then
  stage "GPU tests"
  # The persistent step's and the tile GEMM's tests (never yet run on a GPU) apart, each in a process of its own
  # under its own limit: a hang or a fault there must not cost the others' results. Autotune runs both kernels,
  # so it comes last, alone.
  # Each group leaves the benchmarks their time: a hang (a grid barrier that never opens) costs its cap only.
  capped 240 240 build-gpu/tests/chatmill_tests --gtest_filter='Gpu*:-*Persistent*:*Tile*:*Autotune*' > "$OUT/gpu_tests.log" 2>&1
  capped 100 220 build-gpu/tests/chatmill_tests --gtest_filter='Gpu*Tile*' >> "$OUT/gpu_tests.log" 2>&1
  capped 100 200 build-gpu/tests/chatmill_tests --gtest_filter='Gpu*Persistent*' >> "$OUT/gpu_tests.log" 2>&1
  capped 90 180 build-gpu/tests/chatmill_tests --gtest_filter='Gpu*Autotune*' >> "$OUT/gpu_tests.log" 2>&1
  grep -E '^\[ +(OK|FAILED|SKIPPED) +\]|Failure|Expected|Which is|max|: kernel |varlen vs|^rows [0-9]+:|^skipped:' "$OUT/gpu_tests.log" | head -150
fi
if want kernels; then
  stage "kernel benchmark"
  timeout 120 build-gpu/bench/bench_kernels --out "$OUT/gpu_kernels.jsonl" 2>&1 | tee "$OUT/kernels.md"
fi
if want decode; then
  stage "GPU decode benchmark"
  QUICK=()
  [ "${GPU_CHECK_QUICK:-0}" = 1 ] && QUICK=(--quick)
  # Time kept for the stages after it, when any of them runs.
  keep=10
  for later in train train_gpu memcheck suite; do want "$later" && keep=150; done
  capped "${GPU_CHECK_DECODE_S:-200}" "$keep" python3 bench/run_gpu.py --bin build-gpu --part decode "${QUICK[@]}" \
    --profile-dir "$OUT" --out "$OUT/gpu_generate.jsonl" 2>&1 | tee "$OUT/bench.md"
fi
if want train; then
  stage "GPU training benchmark"
  capped "${GPU_CHECK_TRAIN_S:-150}" 60 python3 bench/run_gpu.py --bin build-gpu --part train --profile-dir "$OUT" \
    --out "$OUT/gpu_train.jsonl" 2>&1 | tee -a "$OUT/bench.md"
fi
if want train_gpu; then
  stage "CUDA training against the CPU (train_gpu)"
  (cd build-gpu && within 60 ctest -R '^train_gpu$' --output-on-failure) > "$OUT/train_gpu.log" 2>&1
  grep -E 'ok   |FAIL |relative|tests passed|tests failed|skipped' "$OUT/train_gpu.log" | head -20
fi

# Out-of-bounds and misaligned accesses the tests' comparisons could miss (Firecracker machines run it; gVisor ones
# refuse the device, which the log then says).
if want memcheck && [ "$(left)" -gt 150 ] && command -v compute-sanitizer >/dev/null; then
  stage "compute-sanitizer memcheck of the kernel tests"
  timeout 90 compute-sanitizer --tool memcheck --error-exitcode 3 build-gpu/tests/chatmill_tests \
    --gtest_filter='GpuFused.KernelsEqualTheReference:GpuStepAdvance.*:GpuAutograd.*:GpuPackedAttention.*' > "$OUT/memcheck.log" 2>&1
  echo "memcheck exit $? (0 clean, 3 errors found, 124 timed out)"
  if [ "$(left)" -gt 120 ]; then  # the tile GEMM's, in a process of its own
    timeout 90 compute-sanitizer --tool memcheck --error-exitcode 3 build-gpu/tests/chatmill_tests \
      --gtest_filter='GpuFused.TileGemmEqualsTheReference' >> "$OUT/memcheck.log" 2>&1
    echo "memcheck of the tile GEMM exit $? (0 clean, 3 errors found, 124 timed out)"
  fi
  grep -E '^=========|\[  (FAILED|PASSED)' "$OUT/memcheck.log" | head -20
fi

if want suite && [ "$(left)" -gt 60 ]; then
  stage "whole test suite"
  (cd build-gpu && within 10 ctest -j 8 --output-on-failure --timeout 300) > "$OUT/tests.log" 2>&1
  echo "tests: $(grep -E 'tests passed|tests failed' "$OUT/tests.log" | tail -1)"
  grep -E '^\s*[0-9]+ - ' "$OUT/tests.log" | head -20
fi
stage done
