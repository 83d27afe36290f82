#!/usr/bin/env python3
"""Checks scripts/parquet_to_jsonl.py: writes the first 50 records of data/sample/lmsys_chat_sample.jsonl to
parquet with the LMSYS-Chat-1M schema (two files, small row groups so that batches cross row groups), converts
them back, and requires the exact input lines (as JSON, key order and floats included, and as text).

    python3 tests/data/test_parquet_to_jsonl.py     # exit 0 = pass, 1 = fail, 77 = skipped (no pyarrow)
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SAMPLE = os.path.join(ROOT, "data", "sample", "lmsys_chat_sample.jsonl")
CONVERTER = os.path.join(ROOT, "scripts", "parquet_to_jsonl.py")
CATEGORIES = ["harassment", "harassment/threatening", "hate", "hate/threatening", "self-harm",
              "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
              "violence/graphic"]

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:
    print("SKIP: pyarrow is not installed (pip install pyarrow==26.0.1)")
    sys.exit(77)


def schema():
    """The release's schema (PROTOCOLS.md section 1)."""
    moderation = pa.struct([("categories", pa.struct([(c, pa.bool_()) for c in CATEGORIES])),
                            ("category_scores", pa.struct([(c, pa.float64()) for c in CATEGORIES])),
                            ("flagged", pa.bool_())])
    return pa.schema([("conversation_id", pa.string()), ("model", pa.string()),
                      ("conversation", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
                      ("turn", pa.int64()), ("language", pa.string()),
                      ("openai_moderation", pa.list_(moderation)), ("redacted", pa.bool_())])


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main():
    with open(SAMPLE, encoding="utf-8") as f:
        lines = [next(f) for _ in range(50)]
    # object_pairs_hook=list keeps key order in the comparison; floats parse to the same doubles or not.
    expected = [json.loads(line, object_pairs_hook=list) for line in lines]
    records = [json.loads(line) for line in lines]
    with tempfile.TemporaryDirectory() as tmp:
        shards = [os.path.join(tmp, "train-00000.parquet"), os.path.join(tmp, "train-00001.parquet")]
        for path, part in zip(shards, (records[:30], records[30:])):
            pq.write_table(pa.Table.from_pylist(part, schema=schema()), path, row_group_size=8)
        for out in ("out.jsonl", "out.jsonl.gz"):
            out = os.path.join(tmp, out)
            run = subprocess.run([sys.executable, CONVERTER, *shards, "--out", out, "--batch-size", "5"],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                fail(f"converter exited {run.returncode}: {run.stderr}")
            opener = gzip.open if out.endswith(".gz") else open
            with opener(out, "rt", encoding="utf-8", newline="") as f:
                got = f.read()
            got_lines = got.splitlines(keepends=True)
            if len(got_lines) != len(lines):
                fail(f"{out}: {len(got_lines)} lines, expected {len(lines)}")
            for i, (g, e) in enumerate(zip(got_lines, expected)):
                if json.loads(g, object_pairs_hook=list) != e:
                    fail(f"{out}: record {i + 1} differs after the round trip:\n{g[:300]}")
            if got != "".join(lines):  # same json.dumps settings, so the text matches too
                fail(f"{out}: records are equal as JSON but the text differs")
    print("PASS: 50 records round-trip through parquet (2 files, row groups of 8) to .jsonl and .jsonl.gz")


if __name__ == "__main__":
    main()
