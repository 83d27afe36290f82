#!/usr/bin/env python3
"""`chatmill generate --print-ids` against HF transformers' greedy generate (reference json), and the CLI's
error handling (exit code 2 and a message naming the problem)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import BIN, expect, failures, run  # noqa: E402

DATA = os.environ["CHATMILL_TESTDATA"]
SRC = os.environ["CHATMILL_SOURCE_DIR"]


def main():
    for name in ["mha_untied", "gqa_tied", "gqa_sharded"]:
        ref = json.load(open(os.path.join(DATA, "ref", f"{name}_generate.json")))
        args = ["generate", "--model", os.path.join(DATA, "models", name), "--max-new-tokens", "64",
                "--temperature", "0", "--print-ids", "--ignore-eos", "--threads", "2"]
        for p in ref["prompts"]:
            args += ["--prompt-ids", " ".join(map(str, p))]
        r = run(*args)
        expect(r.returncode == 0, f"{name}: exit 0 ({r.stderr.strip()})")
        lines = [[int(x) for x in line.split()] for line in r.stdout.strip().splitlines()]
        expect(lines == ref["generated"], f"{name}: CLI greedy ids (batch of {len(ref['prompts'])}) == HF generate")

    model = os.path.join(DATA, "models", "mha_untied")
    r = run("generate", "--model", model, "--prompt-ids", "1 x 3")
    expect(r.returncode == 2 and "bad token id 'x'" in r.stderr, "bad --prompt-ids is a clear error")
    r = run("generate", "--model", model, "--prompt", "hello")
    expect(r.returncode == 2 and "tokenizer.model" in r.stderr, "text prompt without tokenizer is a clear error")
    r = run("generate", "--model", os.path.join(DATA, "nope"), "--prompt-ids", "1")
    expect(r.returncode == 2 and "does not exist" in r.stderr, "missing model folder is a clear error")
    r = run("generate", "--model", model, "--prompt-ids", "1", "--device", "cuda:7")
    expect(r.returncode == 2, "unavailable device is a clear error")

    # Text in, text out, with the shipped sample tokenizer and a fresh model; the same seed repeats.
    demo = os.path.join(DATA, "scratch", "cli_demo")
    r = run("init", "--preset", "debug", "--out", demo, "--overwrite", "--tokenizer",
            os.path.join(SRC, "data", "sample", "tokenizer.model"))
    expect(r.returncode == 0, f"init with the sample tokenizer ({r.stderr.strip()})")
    gen = ["generate", "--model", demo, "--prompt", "Once upon a time", "--max-new-tokens", "20",
           "--temperature", "0.9", "--top-p", "0.95", "--seed", "5"]
    a, b = run(*gen), run(*gen)
    expect(a.returncode == 0 and a.stdout.strip() != "" and a.stdout == b.stdout, "sampled text repeats with its seed")
    if failures:
        sys.exit(f"{len(failures)} failure(s)")


if __name__ == "__main__":
    main()
