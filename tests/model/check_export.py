#!/usr/bin/env python3
"""chatmill's exports load in transformers unchanged and give the reference logits.

For each reference model (tests/model/make_reference.py): `chatmill convert` writes a folder (float32, and a
sharded one, and bfloat16); transformers.AutoModelForCausalLM.from_pretrained loads it; logits are compared with
the reference. The stories260K llama2.c import goes the same way, and the exported tokenizer loads in
transformers.AutoTokenizer and encodes like SentencePiece.
"""
import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import hf_tokenizer_oracle  # noqa: E402

BIN = os.environ["CHATMILL_BIN"]
DATA = os.environ["CHATMILL_TESTDATA"]
SHARED = os.environ["CHATMILL_SHARED_DATA"]
OUT = os.path.join(DATA, "scratch", "check_export")
LLAMA2_TOK = os.path.join(SHARED, "tokenizer", "llama2-tokenizer.model")
failures = []


def convert(*args):
    subprocess.run([BIN, "convert", *args], check=True, stdout=subprocess.DEVNULL)


def check(name, got, want, tol):
    diff = (got.double() - want.double()).abs().max().item()
    ok = diff <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |transformers(export) - reference| = {diff:.3g} (tolerance {tol:g})")
    if not ok:
        failures.append(name)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    torch.set_num_threads(2)
    for name in ["mha_untied", "gqa_tied", "gqa_sharded"]:
        ref = load_file(os.path.join(DATA, "ref", f"{name}.safetensors"))
        src = os.path.join(DATA, "models", name)
        variants = {
            "float32": ([], torch.float32, ref["logits"], 1e-5),
            "sharded": (["--max-shard-size", "30KB"], torch.float32, ref["logits"], 1e-5),
            "bfloat16": (["--dtype", "bfloat16"], torch.bfloat16, ref["logits_bf16"], 1e-5),
        }
        for variant, (args, dtype, want, tol) in variants.items():
            out = os.path.join(OUT, f"{name}_{variant}")
            convert("--model", src, "--out", out, *args)
            if variant == "sharded":
                assert os.path.exists(os.path.join(out, "model.safetensors.index.json")), "expected a sharded export"
            model = AutoModelForCausalLM.from_pretrained(out).eval()
            assert model.dtype == dtype, f"{out}: transformers loaded {model.dtype}, expected {dtype}"
            with torch.no_grad():
                got = model(ref["input_ids"]).logits.float()
            check(f"{name} {variant}", got, want, tol)

    stories = os.path.join(SHARED, "models", "stories260K", "stories260K.bin")
    if os.path.exists(stories):
        ref = load_file(os.path.join(DATA, "ref", "stories260K.safetensors"))
        out = os.path.join(OUT, "stories260K")
        convert("--llama2c", stories, "--out", out)
        model = AutoModelForCausalLM.from_pretrained(out).eval()
        with torch.no_grad():
            check("stories260K (llama2.c import)", model(ref["tokens"]).logits.float(), ref["logits"], 1e-4)

    if os.path.exists(LLAMA2_TOK):
        import sentencepiece as spm
        out = os.path.join(OUT, "with_tokenizer")
        convert("--model", os.path.join(DATA, "models", "mha_untied"), "--out", out, "--tokenizer", LLAMA2_TOK)
        sp = spm.SentencePieceProcessor(model_file=os.path.join(out, "tokenizer.model"))
        tok = AutoTokenizer.from_pretrained(out)
        texts = ["Hello world", "  two  spaces", " leading", "\n\nnew\nlines", "emoji 😀", "x=1+2;\n\tint y;"]
        usable, why = hf_tokenizer_oracle(tok, sp)
        if not usable:
            print(f"skip exported tokenizer: {why}")
        else:
            bad = [t for t in texts if tok(t)["input_ids"] != [1] + sp.encode(t)]
            print(f"{'ok  ' if not bad else 'FAIL'} exported tokenizer: AutoTokenizer == [bos] + SentencePiece on "
                  f"{len(texts)} texts")
            if bad:
                failures.append(f"tokenizer differs on {bad}")

    # Bad sizes: a clear error and exit 2 (".": std::stod threw before, and the process aborted).
    for size in [".", "1..5MB", "5XB", "1e999GB", ""]:
        r = subprocess.run([BIN, "convert", "--model", os.path.join(DATA, "models", "mha_untied"), "--out",
                            os.path.join(OUT, "bad_size"), "--max-shard-size", size], capture_output=True, text=True)
        ok = r.returncode == 2 and "size" in r.stderr and "chatmill: error" in r.stderr
        print(f"{'ok  ' if ok else 'FAIL'} --max-shard-size {size!r}: exit {r.returncode}, {r.stderr.strip()[:100]}")
        if not ok:
            failures.append(f"max-shard-size {size!r}")

    if failures:
        sys.exit(f"{len(failures)} failure(s): {failures}")


if __name__ == "__main__":
    main()
