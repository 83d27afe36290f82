#!/usr/bin/env bash
# Downloads (here, where apt works) the Debian packages that the GPU machine's image lacks, into .deps/, for the
# device tool to carry: run `bash scripts/fetch_gpu_deps.sh`, then call the device with carry [".deps"] and
# `bash scripts/gpu_check.sh $OUT`, which unpacks them into a private prefix (nothing is installed system-wide).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps
cd .deps
apt-get download libsimdjson-dev libsimdjson14 libgloo-dev libssl-dev libcpp-httplib-dev
ls -la
