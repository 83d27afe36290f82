#!/usr/bin/env bash
# The main job on the embedded default, on the CPU, in a few minutes: sets up and builds, then on the shipped
# sample (data/sample/: self-written LMSYS-format conversations and a 512-piece tokenizer) computes the
# paper's statistics, cuts its subsets, tokenises HighQuality into a packed store (one sample shown with its
# loss mask), fine-tunes a tiny Llama on it with a progress bar and a falling loss and evaluates it in the same
# process (MMLU and MT-Bench samples), generates from it, and sweeps its checkpoints over the benchmarks into an
# HTML report. Everything goes to checkpoints/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
TOK=data/sample/tokenizer.model
build/chatmill data stats --input data/sample/lmsys_chat_sample.jsonl --tokenizer "$TOK" --out checkpoints/demo/stats.json
build/chatmill data build configs/data/sample_subsets.yaml
build/chatmill data tokenize configs/data/sample_tokenize.yaml
build/chatmill data show-mask --input checkpoints/data/sample/highquality/highquality.jsonl --tokenizer "$TOK" --index 0 --plain
rm -rf checkpoints/runs/sample-tiny
build/chatmill train configs/train/sample_tiny.yaml
MODEL=$(ls -d checkpoints/runs/sample-tiny/checkpoints/step-* | tail -1)/model
build/chatmill generate --model "$MODEL" --max-new-tokens 48 --temperature 0 \
  --prompt "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions. USER: How does the mill grind the flour? ASSISTANT:"
build/chatmill data topics --input data/sample/lmsys_chat_sample.jsonl --model "$MODEL" --k 8 --out checkpoints/demo/topics.json
rm -rf checkpoints/eval/sample-tiny
build/chatmill eval configs/eval/sample.yaml
echo "loss curve: checkpoints/runs/sample-tiny/loss.svg; metrics: checkpoints/runs/sample-tiny/metrics.jsonl"
echo "in-process eval: checkpoints/runs/sample-tiny/eval/; report: checkpoints/eval/sample-tiny/report.html"
