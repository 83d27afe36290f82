#!/usr/bin/env python3
"""CPU training-step benchmark: chatmill vs HF transformers on the same ~24M-parameter Llama (the tiny preset),
float32, batch 4 x 256, AdamW, the same thread count; alternating rounds, median. Writes
bench/results/cpu_train.jsonl and prints the ratio."""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "cpu_train.jsonl"))
    a = ap.parse_args()
    if os.path.exists(a.out):
        os.remove(a.out)
    common = ["--preset", "tiny", "--batch", "4", "--seq", "256", "--steps", "5", "--threads", str(a.threads), "--out", a.out]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    ours = {"fused": [], "reference": []}
    hf = []
    bench = os.path.join(a.bin, "bench", "bench_train_step")
    for _ in range(a.rounds):
        for k in ours:
            ours[k].append(json.loads(subprocess.run([bench, *common, "--kernels", k], check=True, capture_output=True,
                                                     text=True, env=env).stdout))
        hf.append(json.loads(subprocess.run([sys.executable, os.path.join(HERE, "hf_train_step.py"), *common], check=True,
                                            capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1]))
    h = statistics.median(r["step_s"] for r in hf)
    lines = [f"CPU, {a.threads} threads, {hf[0]['params'] / 1e6:.1f}M parameters, float32, batch 4 x 256, AdamW, "
             f"median of {a.rounds} alternating rounds: HF transformers {h * 1e3:.0f} ms/step, peak RSS "
             f"{statistics.median(r['peak_rss_mb'] for r in hf):.0f} MB"]
    for k, rows in ours.items():
        o = statistics.median(r["step_s"] for r in rows)
        lines.append(f"- chatmill, {k} kernels: {o * 1e3:.0f} ms/step: {h / o:.2f}x; peak RSS "
                     f"{statistics.median(r['peak_rss_mb'] for r in rows):.0f} MB")
    print("\n".join(lines))
    with open(os.path.splitext(a.out)[0] + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
