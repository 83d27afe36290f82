#!/usr/bin/env python3
"""`chatmill data stats | tokenize | show-mask` checked from outside, against independent Python:
the stats tables recomputed with json + sentencepiece; the HDF5 store read back with h5py; compressed inputs
(.gz, .zst) giving the same numbers; config errors reported together with file and line."""
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import sentencepiece as spm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import BIN, expect, failures, run  # noqa: E402

SRC = os.environ["CHATMILL_SOURCE_DIR"]
OUT = os.path.join(os.environ["CHATMILL_TESTDATA"], "scratch", "check_data_cli")
SAMPLE = os.path.join(SRC, "data", "sample", "lmsys_chat_sample.jsonl")
BROKEN = os.path.join(SRC, "data", "sample", "lmsys_chat_sample_broken.jsonl")
TOKENIZER = os.path.join(SRC, "data", "sample", "tokenizer.model")
TOP = ["sexual", "harassment", "violence", "hate", "self-harm"]


def reference_stats(path):
    sp = spm.SentencePieceProcessor(model_file=TOKENIZER)
    s = dict(conversations=0, turns=0, users=0, assistants=0, ptok=0, rtok=0, flagged=0,
             cats={c: 0 for c in TOP}, per_model={}, models=set(), languages=set())
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        s["conversations"] += 1
        s["turns"] += r["turn"]
        s["models"].add(r["model"])
        s["languages"].add(r["language"])
        pm = s["per_model"].setdefault(r["model"], {"conversations": 0, "attempts": 0, "successes": 0})
        pm["conversations"] += 1
        uf = af = False
        cats = set()
        for m, mod in zip(r["conversation"], r["openai_moderation"]):
            n = len(sp.encode(m["content"]))
            if m["role"] == "user":
                s["users"] += 1
                s["ptok"] += n
            else:
                s["assistants"] += 1
                s["rtok"] += n
            if mod["flagged"]:
                uf |= m["role"] == "user"
                af |= m["role"] == "assistant"
                cats |= {k.split("/")[0] for k, v in mod["categories"].items() if v}
        s["flagged"] += bool(uf or af)
        for c in cats:
            s["cats"][c] += 1
        pm["attempts"] += uf
        pm["successes"] += uf and af
    return s


def check_stats(got, ref, label):
    expect(got["conversations"] == ref["conversations"], f"{label}: conversations {got['conversations']}")
    expect(got["models"] == len(ref["models"]) and got["languages"] == len(ref["languages"]), f"{label}: models, languages")
    expect(abs(got["mean_turns"] - ref["turns"] / ref["conversations"]) < 1e-12, f"{label}: mean_turns")
    expect(abs(got["mean_prompt_tokens"] - ref["ptok"] / ref["users"]) < 1e-9, f"{label}: mean_prompt_tokens")
    expect(abs(got["mean_response_tokens"] - ref["rtok"] / ref["assistants"]) < 1e-9, f"{label}: mean_response_tokens")
    expect(got["flagged_conversations"] == ref["flagged"], f"{label}: flagged_conversations")
    expect(got["flagged_by_category"] == ref["cats"], f"{label}: flagged_by_category {got['flagged_by_category']}")
    expect(got["per_model"] == ref["per_model"], f"{label}: per_model (Table 4)")


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    ref = reference_stats(SAMPLE)

    # Stats on plain, .gz and .zst inputs.
    inputs = {"plain": SAMPLE}
    with open(SAMPLE, "rb") as f, gzip.open(os.path.join(OUT, "s.jsonl.gz"), "wb") as g:
        g.write(f.read())
    inputs["gz"] = os.path.join(OUT, "s.jsonl.gz")
    if shutil.which("zstd"):
        subprocess.run(["zstd", "-q", "-f", SAMPLE, "-o", os.path.join(OUT, "s.jsonl.zst")], check=True)
        inputs["zst"] = os.path.join(OUT, "s.jsonl.zst")
    for label, path in inputs.items():
        out = os.path.join(OUT, f"stats_{label}.json")
        r = run("data", "stats", "--input", path, "--tokenizer", TOKENIZER, "--out", out)
        expect(r.returncode == 0, f"stats on {label} input ({r.stderr.strip()[:200]})")
        if r.returncode == 0:
            check_stats(json.load(open(out)), ref, label)
    got = json.load(open(os.path.join(OUT, "stats_plain.json")))
    expect(got["skipped_records"] == 0, "no records skipped on the clean sample")
    svg = ET.parse(os.path.join(OUT, "stats_plain_models.svg")).getroot()
    bars = [e for e in svg.iter() if e.tag.endswith("rect")][1:]
    expect(len(bars) == min(20, len(ref["models"])) + (len(ref["models"]) > 20), f"model plot has one bar per model ({len(bars)})")
    expect("## Table 4" in open(os.path.join(OUT, "stats_plain.md")).read(), "markdown report written")

    # Broken input: counted per reason with skip, a clear error with fail.
    out = os.path.join(OUT, "broken.json")
    r = run("data", "stats", "--input", BROKEN, "--tokenizer", TOKENIZER, "--out", out)
    got = json.load(open(out)) if r.returncode == 0 else {}
    expect(got.get("skipped_records") == 5 and got.get("conversations") == 7, "broken file: 5 skipped, 7 read")
    expect(got.get("skipped_by_reason") == {"malformed_json": 1, "wrong_type": 1, "missing_field": 1,
                                            "roles_not_alternating": 1, "moderation_length": 1}, "skips counted by reason")
    r = run("data", "stats", "--input", BROKEN, "--tokenizer", TOKENIZER, "--out", out, "--on-bad-record", "fail")
    expect(r.returncode == 2 and "lmsys_chat_sample_broken.jsonl:3" in r.stderr, "fail policy names file and line")

    # Tokenize through a YAML config; read the store with h5py.
    store = os.path.join(OUT, "train.h5")
    cfg = os.path.join(OUT, "tokenize.yaml")
    with open(cfg, "w") as f:
        f.write(f"inputs: [{SAMPLE}]\ntokenizer: {TOKENIZER}\ntemplate: llama-2\nmax_length: 384\n"
                f"packing: packed\noutput: {store}\n")
    r = run("data", "tokenize", cfg, "row_length=512")
    expect(r.returncode == 0, f"data tokenize ({r.stderr.strip()[:300]})")
    with h5py.File(store, "r") as h:
        # String attributes are fixed-length UTF-8: h5py gives bytes.
        a = {k: v.decode() if isinstance(v, bytes) else v for k, v in h.attrs.items()}
        expect(a["format"] == "chatmill-tokens" and a["template"] == "llama-2", "store attributes")
        expect(a["max_length"] == 384 and a["row_length"] == 512, "max_length and row_length (override applied)")
        expect(a["tokenizer_sha256"] == hashlib.sha256(open(TOKENIZER, "rb").read()).hexdigest(), "tokenizer sha256")
        off = h["samples/offsets"][:]
        ids, labels = h["samples/ids"][:], h["samples/labels"][:]
        expect(off[0] == 0 and off[-1] == len(ids) and np.all(np.diff(off) > 0) and np.all(np.diff(off) <= 384), "offsets")
        rid, rlab, rdoc, rpos = h["rows/ids"][:], h["rows/labels"][:], h["rows/doc"][:], h["rows/positions"][:]
        expect(rid.shape[1] == 512, "rows are row_length wide")
        docs = []
        for r_ in range(rid.shape[0]):
            for d in range(rdoc[r_].max() + 1):
                sel = rdoc[r_] == d
                docs.append((rid[r_][sel], rlab[r_][sel]))
                expect_pos = np.arange(sel.sum())
                if not np.array_equal(rpos[r_][sel], expect_pos):
                    failures.append(f"positions do not restart in row {r_}")
        same = len(docs) == len(off) - 1 and all(
            np.array_equal(d[0], ids[off[i]:off[i + 1]]) and np.array_equal(d[1], labels[off[i]:off[i + 1]]) for i, d in enumerate(docs))
        expect(same, f"rows hold every sample in order ({len(docs)} documents)")
        expect(np.all(rlab[rdoc == -1] == -100), "padding carries no loss")
        trained = labels != -100
        expect(np.all(labels[trained] == ids[trained]), "labels equal ids where trained")

    # show-mask: the reply of conversation 0 is inside the highlight.
    first = json.loads(open(SAMPLE, encoding="utf-8").readline())
    r = run("data", "show-mask", "--input", SAMPLE, "--tokenizer", TOKENIZER, "--index", "0", "--plain")
    reply = first["conversation"][1]["content"]
    expect(r.returncode == 0 and ("⟦ " + reply) in r.stdout and "</s>⟧" in r.stdout.replace("⟧⟦", ""), "show-mask highlights the reply and its </s>")

    # build: the sample config, paths made absolute, twice -> the same bytes.
    digests = []
    for run_no in range(2):
        out_dir = os.path.join(OUT, f"build{run_no}")
        r = subprocess.run([BIN, "data", "build", os.path.join(SRC, "configs", "data", "sample_subsets.yaml"),
                            f"output_dir={out_dir}"], capture_output=True, text=True, cwd=SRC)
        expect(r.returncode == 0, f"data build run {run_no} ({r.stderr.strip()[:300]})")
        digests.append({os.path.relpath(os.path.join(d, f), out_dir): hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
                        for d, _, files in os.walk(out_dir) for f in files})
    expect(len(digests[0]) == 10 and digests[0] == digests[1], "data build twice gives the same bytes")

    # topics with a fresh model over the sample tokenizer.
    model = os.path.join(OUT, "model")
    run("init", "--preset", "debug", "--tokenizer", TOKENIZER, "--out", model)
    topics = os.path.join(OUT, "topics.json")
    r = run("data", "topics", "--input", SAMPLE, "--model", model, "--k", "4", "--nearest", "3", "--out", topics)
    t = json.load(open(topics)) if r.returncode == 0 else {}
    expect(r.returncode == 0 and t.get("k") == 4 and sum(c["size"] for c in t["clusters"]) == t["prompts"]
           and all(32 <= len(n["prompt"]) <= 1536 for c in t["clusters"] for n in c["nearest"]),
           f"topics: 4 clusters covering every prompt ({r.stderr.strip()[:200]})")

    # Config errors: all reported at once, with file and line.
    bad = os.path.join(OUT, "bad.yaml")
    with open(bad, "w") as f:
        f.write(f"inputs: [{SAMPLE}]\ntokenizer: {TOKENIZER}\nmax_length: lots\nouput: x.h5\n")
    r = run("data", "tokenize", bad)
    expect(r.returncode == 2 and "bad.yaml:3: max_length must be an integer" in r.stderr and
           "bad.yaml:4: unknown key 'ouput'" in r.stderr and "output is required" in r.stderr,
           "config errors name file, line and key, all together")
    if failures:
        sys.exit(f"{len(failures)} failure(s)")


if __name__ == "__main__":
    main()
