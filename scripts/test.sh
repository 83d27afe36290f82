#!/usr/bin/env bash
# Sets up a fresh machine, builds, and runs the whole test suite (C++ GoogleTest + Python oracle checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j "$(nproc)"
