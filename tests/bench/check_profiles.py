#!/usr/bin/env python3
"""The benchmarks' --profile tables (bench/op_profile.h), on the CPU: bench_train_step and bench_generate
(engine) profile extra steps after the timed ones and write per-operator tables in which the model's matmuls
appear, and a bad path is a clear error. The same code writes the GPU kernel tables on the GPU machine."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import BIN, expect, failures  # noqa: E402

BENCH = os.path.join(os.path.dirname(BIN), "bench")


def rows(path):
    """(name, calls per step, us per step) of every table row."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\| (.+?) \| ([0-9.e+-]+) \| ([0-9.]+) \| ([0-9.]+)% \|$", line.rstrip("\n"))
            if m:
                out.append((m.group(1), float(m.group(2)), float(m.group(3))))
    return out


def main():
    tmp = tempfile.mkdtemp()
    train = os.path.join(tmp, "train.md")
    r = subprocess.run([os.path.join(BENCH, "bench_train_step"), "--preset", "debug", "--batch", "2", "--seq", "32",
                        "--steps", "1", "--warmup", "1", "--threads", "2", "--profile", train],
                       capture_output=True, text=True)
    expect(r.returncode == 0 and os.path.exists(train), f"bench_train_step --profile runs ({r.stderr.strip()[-300:]})")
    if os.path.exists(train):
        t = rows(train)
        names = {n for n, _, _ in t}
        mm = [c for n, c, _ in t if n in ("aten::mm", "aten::addmm", "aten::matmul", "aten::linear")]
        expect(len(t) >= 10 and mm and max(mm) >= 1 and "Profile of 2 step(s)" in open(train).read(),
               f"training profile: {len(t)} operator rows, matmuls among them ({sorted(names)[:6]}...)")
        expect(all(t[i][2] >= t[i + 1][2] for i in range(len(t) - 1) if t[i][0] != "name"),
               "training profile rows are sorted by time, largest first")

    # generate()'s loop runs in the profiling thread: its operators are all in the table. The engine's run in
    # the engine's thread (only their GPU kernels would be on a GPU): the run completes and writes the file.
    for engine in ([], ["--engine"]):
        gen = os.path.join(tmp, f"decode{len(engine)}.md")
        r = subprocess.run([os.path.join(BENCH, "bench_generate"), "--preset", "debug", *engine, "--batch", "2",
                            "--prompt-len", "8", "--new-tokens", "4", "--repeats", "1", "--warmup", "0", "--threads",
                            "2", "--profile", gen], capture_output=True, text=True)
        expect(r.returncode == 0 and os.path.exists(gen) and "Profile of 1 step(s)" in open(gen).read(),
               f"bench_generate {' '.join(engine)} --profile runs and writes ({r.stderr.strip()[-300:]})")
        if not engine and os.path.exists(gen):
            names = {n for n, _, _ in rows(gen)}
            expect(names & {"aten::mm", "aten::addmm", "aten::matmul", "aten::linear"} and
                   any("attention" in n for n in names), f"generate profile: matmuls and attention ({len(names)} rows)")
    r = subprocess.run([os.path.join(BENCH, "bench_train_step"), "--preset", "debug", "--batch", "1", "--seq", "8",
                        "--steps", "1", "--warmup", "0", "--profile", os.path.join(tmp, "no", "such", "dir", "p.md")],
                       capture_output=True, text=True)
    expect(r.returncode == 2 and "cannot write the profile" in r.stderr, "an unwritable profile path is a clear error")
    print("FAILED: " + "; ".join(failures) if failures else "all profile checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
