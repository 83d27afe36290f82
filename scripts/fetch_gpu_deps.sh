#!/usr/bin/env bash
# Downloads (here, where apt and PyPI work) what the GPU machine's image lacks or may lack, into .deps/, for the device
# tool to carry: the Debian packages the build needs, and the Python wheels (for the GPU machine's Python 3.12)
# of the oracles the GPU tests and benchmarks compare against (transformers, sentencepiece, safetensors).
# Run `bash scripts/fetch_gpu_deps.sh`, then call the device with carry [".deps"] and
# `bash scripts/gpu_check.sh $OUT`, which unpacks both into private prefixes (nothing is installed system-wide).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps/wheels
(cd .deps && apt-get download libsimdjson-dev libsimdjson14 libgloo-dev libssl-dev libcpp-httplib-dev libcpp-httplib0.11 libbrotli1 libzstd-dev)
source scripts/python.sh
"$PY" -m pip download --quiet --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any -d .deps/wheels \
  transformers==5.24.0 sentencepiece==0.2.3 safetensors==0.8.0 numpy
du -sh .deps
