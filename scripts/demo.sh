#!/usr/bin/env bash
# The main job on the embedded default, on the CPU: sets up, builds, makes a tiny Llama from the shipped
# sample tokenizer (data/sample/) and generates text with it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
build/chatmill init --preset debug --seed 0 --tokenizer data/sample/tokenizer.model \
  --out checkpoints/demo-debug --overwrite
build/chatmill generate --model checkpoints/demo-debug --prompt "Once upon a time" \
  --max-new-tokens 48 --temperature 0.8 --top-p 0.95 --seed 1
