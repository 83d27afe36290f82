#!/usr/bin/env bash
# Downloads (here, where apt and PyPI work) what the GPU machine's image lacks or may lack, into .deps/, for the device
# tool to carry: the Debian packages a build there needs (used only when the prebuilt binaries of
# scripts/prebuild_gpu.sh cannot run there), and with --wheels the Python wheels (for the GPU machine's Python 3.12)
# of the oracles the GPU tests and benchmarks compare against. The image already holds transformers, safetensors,
# sentencepiece and numpy (/work/.library/device/KINDS.md), and the wheels (~46 MB) together with the prebuilt
# binaries (~42 MB) would pass the device tool's 64 MiB carry limit, so they are opt-in.
# Run `bash scripts/fetch_gpu_deps.sh && bash scripts/prebuild_gpu.sh`, then call the device with carry [".deps"]
# and `bash scripts/gpu_check.sh $OUT`, which unpacks what it uses into private prefixes (nothing system-wide).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps
# The shared test data (tokenizer, stories260K, MT-Bench files: ~2 MB) for the tests that read it there.
if [ -d ../shared/data ]; then rm -rf .deps/shared && mkdir -p .deps/shared && cp -r ../shared/data .deps/shared/; fi
(cd .deps && apt-get download libsimdjson-dev libsimdjson14 libgloo-dev libssl-dev libcpp-httplib-dev libcpp-httplib0.11 libbrotli1 libzstd-dev)
if [ "${1:-}" = "--wheels" ]; then
  source scripts/python.sh
  mkdir -p .deps/wheels
  "$PY" -m pip download --quiet --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any -d .deps/wheels \
    transformers==5.24.0 sentencepiece==0.2.3 safetensors==0.8.0 numpy
fi
du -sh .deps
