#!/usr/bin/env bash
# Prints one hash of everything that goes into the compiled binaries (C++/CUDA sources and CMake files), so a
# prebuilt copy can be checked against the tree it is about to test (scripts/prebuild_gpu.sh, scripts/gpu_check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo CMakeLists.txt
  find src tests bench -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name CMakeLists.txt \)
} | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16
