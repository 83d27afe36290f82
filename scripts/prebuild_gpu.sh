#!/usr/bin/env bash
# Builds the CUDA configuration here (build-cuda: -DCHATMILL_CUDA=ON, sm_90 for H100/H200, against this machine's
# torch 2.11.0+cu130 wheel, the GPU machine's exact torch) and stages it in .deps/prebuilt/ for the device tool to
# carry, so scripts/gpu_check.sh spends the GPU machine's minutes on tests and benchmarks instead of a compile.
# Staged: the executables; every shared library they load except glibc's, libstdc++/libgcc_s and what the GPU
# machine's torch wheel brings (libtorch*, CUDA, NCCL); the CTest files with this tree's paths; and a stamp with
# scripts/source_hash.sh's hash, which gpu_check.sh compares with the tree it runs in before using any of it.
# Staged as .deps/prebuilt.tar.gz, which gpu_check.sh unpacks.
# Usage: bash scripts/prebuild_gpu.sh   (then carry [".deps"])
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python.sh
ROOT=$PWD
B=build-cuda
TORCH_PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
"$PY" -c 'import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith("2.11.0") and torch.version.cuda else
          f"prebuilt binaries need torch 2.11.0 built for CUDA (the GPU machine has 2.11.0+cu130), this is {v}")'
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
cmake -S . -B "$B" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
  -DCHATMILL_CUDA=ON -DTORCH_CUDA_ARCH_LIST=9.0 -DCMAKE_CUDA_ARCHITECTURES=90 -DPython3_EXECUTABLE="$PY" > /dev/null
cmake --build "$B" -j "$(nproc)"
# The persistent kernel must read nothing its own stages write through the read-only path, which the CPU
# emulator cannot see: checked on its SASS.
"$PY" scripts/check_sass_coherence.py "$B/CMakeFiles/chatmill_cuda_kernels.dir/src/model/cuda/persistent_kernels.cu.o"
# CTest discovers the gtest cases by running the test binary; do it here, so the GPU machine needs neither this
# CMake's GoogleTestAddTests module nor a configure step.
(cd "$B" && ctest -N > /dev/null)

P=.deps/prebuilt
rm -rf "$P"
mkdir -p "$P/bin" "$P/lib" "$P/ctest/tests" "$P/ctest/bench"
EXES=(chatmill tests/chatmill_tests bench/bench_generate bench/bench_kernels bench/bench_train_step)
for e in "${EXES[@]}"; do
  mkdir -p "$P/bin/$(dirname "$e")"
  strip -o "$P/bin/$e" "$B/$e"
done
echo "${EXES[*]}" > "$P/executables"

# The libraries: ldd's closure, less the base system (a newer glibc and libstdc++ there run these) and less what
# comes from the torch wheel's folders.
for e in "${EXES[@]}"; do ldd "$B/$e"; done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    case "$name" in
      libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libutil.so.*|libresolv.so.*|ld-linux*) continue ;;
      libstdc++.so.*|libgcc_s.so.*) continue ;;
      libcudart.so.*|libcuda.so.*) continue ;;  # the wheel's (nvidia/cu13/lib) and the driver's
    esac
    case "$path" in */site-packages/*) continue ;; esac
    cp -L "$path" "$P/lib/$name"
  done

# CTest files; the test list file stands in for the discovery include.
cp "$B/CTestTestfile.cmake" "$P/ctest/"
cp "$B/bench/CTestTestfile.cmake" "$P/ctest/bench/"
cp "$B/tests/chatmill_tests[1]_tests.cmake" "$P/ctest/tests/"
sed 's#^include(".*chatmill_tests\[1\]_include.cmake")#include("'"$ROOT/$B"'/tests/chatmill_tests[1]_tests.cmake")#' \
  "$B/tests/CTestTestfile.cmake" > "$P/ctest/tests/CTestTestfile.cmake"
grep -q 'chatmill_tests\[1\]_tests.cmake' "$P/ctest/tests/CTestTestfile.cmake" ||
  { echo "prebuild_gpu: the CTest include line changed form; update the sed above" >&2; exit 1; }

PYBIN=$(grep -m1 -o '^add_test(\[=\[reference_models\]=\] "[^"]*"' "$B/tests/CTestTestfile.cmake" | sed 's/.*"\(.*\)"/\1/')
SHARED=$(grep -m1 -o 'CHATMILL_SHARED_DATA=[^;"]*' "$B/tests/CTestTestfile.cmake" | cut -d= -f2)
cat > "$P/stamp" <<EOS
source_hash=$(bash scripts/source_hash.sh)
root=$ROOT
build=$ROOT/$B
python=$PYBIN
shared=$SHARED
EOS
cat "$P/stamp"
du -sh "$P" "$P/bin" "$P/lib"
# Packed: the device tool carries at most 64 MiB, and the binaries compress to about a third.
tar czf .deps/prebuilt.tar.gz -C .deps prebuilt && rm -rf "$P"
du -sh .deps/prebuilt.tar.gz
