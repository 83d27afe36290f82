#!/usr/bin/env python3
"""CPU benchmark: chatmill vs HF transformers generating with the same ~24M-parameter Llama (stories15M's
shape, untied, Llama-2 vocabulary), float32, the same thread count, measured in one run.
Writes bench/results/cpu_generate.jsonl and prints a markdown table with the ratios.
Usage: python3 bench/run_cpu.py [--bin build] [--threads 2]"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def median_run(runs):
    """Per metric, the median over rounds."""
    out = dict(runs[0])
    for key in ("ttft_s", "prefill_tokens_per_s", "decode_tokens_per_s"):
        out[key] = statistics.median(r[key] for r in runs)
    if "total_tokens_per_s" in runs[0]:
        out["total_tokens_per_s"] = statistics.median(r["total_tokens_per_s"] for r in runs)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "cpu_generate.jsonl"))
    a = ap.parse_args()
    model = os.path.join(a.bin, "bench-models", "tiny")
    if not os.path.exists(os.path.join(model, "config.json")):
        subprocess.run([os.path.join(a.bin, "chatmill"), "init", "--preset", "tiny", "--seed", "0", "--out", model],
                       check=True)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    if os.path.exists(a.out):
        os.remove(a.out)
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))

    def run(cmd):
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        return json.loads(out.strip().splitlines()[-1])

    for batch in (1, 8, 32):
        common = ["--model", model, "--batch", str(batch), "--prompt-len", "128", "--new-tokens", "128",
                  "--threads", str(a.threads), "--repeats", "3", "--out", a.out]
        # Shared, noisy CPUs: alternate the engines over several rounds and keep the median round.
        ours, engine, hf = [], [], []
        for _ in range(a.rounds):
            ours.append(run([os.path.join(a.bin, "bench", "bench_generate"), *common]))
            engine.append(run([os.path.join(a.bin, "bench", "bench_generate"), *common, "--engine"]))
            hf.append(run([sys.executable, os.path.join(HERE, "hf_generate.py"), *common]))
        rows.append((batch, median_run(ours), median_run(hf), median_run(engine)))
    print(f"CPU: {platform.processor() or platform.machine()}, {a.threads} threads, float32, "
          f"{rows[0][1]['params'] / 1e6:.1f}M parameters, prompt 128, 128 new tokens, greedy; "
          f"median of {a.rounds} alternating rounds\n")
    print("| batch | chatmill prefill tok/s | HF prefill tok/s | ratio | chatmill decode tok/s | HF decode tok/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for batch, o, h, _ in rows:
        print(f"| {batch} | {o['prefill_tokens_per_s']:.0f} | {h['prefill_tokens_per_s']:.0f} | "
              f"{o['prefill_tokens_per_s'] / h['prefill_tokens_per_s']:.2f}x | {o['decode_tokens_per_s']:.0f} | "
              f"{h['decode_tokens_per_s']:.0f} | {o['decode_tokens_per_s'] / h['decode_tokens_per_s']:.2f}x |")
    print("\nThe serving engine (continuous batching; all submitted at once, so the equal-length prompts prefill as one batch):\n")
    print("| batch | engine TTFT s | HF TTFT s | engine decode tok/s | HF decode tok/s | ratio | engine total tok/s | HF total tok/s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for batch, _, h, e in rows:
        ht = batch * 128 / (h["ttft_s"] + batch * 127 / h["decode_tokens_per_s"])
        print(f"| {batch} | {e['ttft_s']:.3f} | {h['ttft_s']:.3f} | {e['decode_tokens_per_s']:.0f} | "
              f"{h['decode_tokens_per_s']:.0f} | {e['decode_tokens_per_s'] / h['decode_tokens_per_s']:.2f}x | "
              f"{e['total_tokens_per_s']:.0f} | {ht:.0f} | {e['total_tokens_per_s'] / ht:.2f}x |")


if __name__ == "__main__":
    main()
