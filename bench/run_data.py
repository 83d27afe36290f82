#!/usr/bin/env python3
"""Data-pipeline benchmark: `chatmill data stats` and `chatmill data tokenize` (template + loss mask + packing
into HDF5) on a synthetic LMSYS-format file, against a Python FastChat-style preprocessing (HF tokenizer,
string-split masking; bench/fastchat_preprocess.py) of the same file in the same run. Reports conversations/s,
peak RSS, and the time the full 1M-conversation release would take (extrapolated linearly).
Usage: python3 bench/run_data.py [--bin build] [--conversations 100000] [--python-limit 10000] [--threads 2]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def timed(cmd, env=None):
    """Runs cmd; returns (seconds, the child's own peak RSS in MB from wait4, stdout)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            sys.exit(f"{cmd[0]} failed:\n{err.read()[-2000:]}")
        return dt, usage.ru_maxrss / 1024, out.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build"))
    ap.add_argument("--conversations", type=int, default=100000)
    ap.add_argument("--python-limit", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "..", "shared", "data", "tokenizer", "llama2-tokenizer.model"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "data_pipeline.json"))
    a = ap.parse_args()
    work = os.path.join(a.bin, "bench-data")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, f"synth_{a.conversations}.jsonl")
    if not os.path.exists(data):
        subprocess.run([sys.executable, os.path.join(HERE, "synth_lmsys.py"), str(a.conversations), data, "--seed", "0"], check=True)
    size_mb = os.path.getsize(data) / 1e6
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    chatmill = os.path.join(a.bin, "chatmill")

    # Python peer first (its RSS would otherwise hide behind chatmill's in RUSAGE_CHILDREN).
    py_t, py_rss, py_out = timed([sys.executable, os.path.join(HERE, "fastchat_preprocess.py"), "--input", data,
                                  "--tokenizer", a.tokenizer, "--max-length", "2048", "--template", "vicuna_v1.1",
                                  "--limit", str(a.python_limit)], env)
    py = json.loads(py_out.strip().splitlines()[-1])

    stats_t, stats_rss, _ = timed([chatmill, "data", "stats", "--input", data, "--tokenizer", a.tokenizer,
                                   "--out", os.path.join(work, "stats.json"), "--threads", str(a.threads)], env)
    cfg = os.path.join(work, "tokenize.yaml")
    with open(cfg, "w") as f:
        f.write(f"inputs: [{data}]\ntokenizer: {a.tokenizer}\ntemplate: vicuna_v1.1\nmax_length: 2048\n"
                f"packing: packed\noutput: {os.path.join(work, 'train.h5')}\n")
    tok_t, tok_rss, tok_out = timed([chatmill, "data", "tokenize", cfg, "--threads", str(a.threads)], env)

    n = a.conversations
    py_rate = py["conversations"] / py["seconds"]  # the peer's own timer, tokenizer load excluded
    res = {
        "machine": f"{os.cpu_count()} cores", "threads": a.threads, "conversations": n, "file_mb": round(size_mb, 1),
        "chatmill_stats": {"seconds": round(stats_t, 2), "conversations_per_s": round(n / stats_t), "peak_rss_mb": round(stats_rss)},
        "chatmill_tokenize_mask_pack": {"seconds": round(tok_t, 2), "conversations_per_s": round(n / tok_t),
                                        "peak_rss_mb": round(tok_rss), "report": tok_out.strip().splitlines()[-3:]},
        "python_fastchat_style": {"conversations": py["conversations"], "seconds": round(py["seconds"], 2),
                                  "conversations_per_s": round(py_rate), "peak_rss_mb": round(py_rss)},
        "speedup_tokenize_vs_python": round((n / tok_t) / py_rate, 2),
        "extrapolated_1M_seconds": {"stats": round(stats_t * 1e6 / n), "tokenize_mask_pack": round(tok_t * 1e6 / n),
                                    "python_fastchat_style": round(1e6 / py_rate)},
    }
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
