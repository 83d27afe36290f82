#!/usr/bin/env python3
"""Checks scripts/mmlu_parquet_to_jsonl.py: writes the project's MMLU sample (data/sample/mmlu, hendrycks CSV
layout) to parquet with the cais/mmlu schema, once in the all/ layout (test in two shards, row groups of 2, plus
validation and auxiliary_train files) and once in per-subject folders (half of them without a subject column),
converts both, and requires the JSONL records to equal the CSV rows: subject, question, choices, answer letter as
index 0..3, in the same order. Then each broken input (missing column, 3 choices, answer 7, empty subject, both
layouts at once) must exit 2 with a message naming the file, and leave no dev.jsonl/test.jsonl behind.

    python3 tests/eval/test_mmlu_parquet_to_jsonl.py     # exit 0 = pass, 1 = fail, 77 = skipped (no pyarrow)
"""
import csv
import glob
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SAMPLE = os.path.join(ROOT, "data", "sample", "mmlu")
CONVERTER = os.path.join(ROOT, "scripts", "mmlu_parquet_to_jsonl.py")

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:
    print("SKIP: pyarrow is not installed (pip install pyarrow==26.0.1)")
    sys.exit(77)

# cais/mmlu's columns, in its order; answer is a ClassLabel, stored as int64.
SCHEMA = pa.schema([("question", pa.string()), ("subject", pa.string()), ("choices", pa.list_(pa.string())),
                    ("answer", pa.int64())])


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def read_sample(split):
    """The sample's rows as cais/mmlu records: subjects in file-name order, rows in file order."""
    records = []
    for path in sorted(glob.glob(os.path.join(SAMPLE, split, f"*_{split}.csv"))):
        subject = os.path.basename(path)[:-len(f"_{split}.csv")]
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.reader(f):
                if len(row) != 6 or row[5] not in ("A", "B", "C", "D"):
                    fail(f"{path}: unexpected sample row {row}")
                records.append({"subject": subject, "question": row[0], "choices": row[1:5],
                                "answer": "ABCD".index(row[5])})
    if not records:
        fail(f"no {split} rows under {SAMPLE}")
    return records


def write(path, records, schema=SCHEMA, row_group_size=2):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records, schema=schema), path, row_group_size=row_group_size)


def convert(inputs, out, *extra):
    return subprocess.run([sys.executable, CONVERTER, "--input", *inputs, "--out", out, *extra],
                          capture_output=True, text=True)


def read_jsonl(path):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if not text.endswith("\n"):
        fail(f"{path}: does not end with a newline")
    return [json.loads(line) for line in text[:-1].split("\n")]  # not splitlines: U+2028 may sit in a question


def check_output(label, out, expected):
    """expected: {split: records}; the output must hold exactly these splits and records, in order."""
    got_files = sorted(os.listdir(out))
    want_files = sorted(f"{s}.jsonl" for s in expected)
    if got_files != want_files:
        fail(f"{label}: output folder holds {got_files}, expected {want_files}")
    for split, want in expected.items():
        got = read_jsonl(os.path.join(out, f"{split}.jsonl"))
        if len(got) != len(want):
            fail(f"{label}: {split}.jsonl has {len(got)} records, expected {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w:
                fail(f"{label}: {split}.jsonl record {i + 1} is {g}, expected {w}")
            if not isinstance(g["answer"], int):
                fail(f"{label}: {split}.jsonl record {i + 1}: answer {g['answer']!r} is not an integer")


def expect_error(label, inputs, out, *needles):
    run = convert(inputs, out)
    if run.returncode != 2:
        fail(f"{label}: exit code {run.returncode}, expected 2 (stdout: {run.stdout!r}, stderr: {run.stderr!r})")
    for needle in needles:
        if needle not in run.stderr:
            fail(f"{label}: the error does not mention {needle!r}: {run.stderr!r}")
    leftover = os.listdir(out) if os.path.isdir(out) else []
    if leftover:
        fail(f"{label}: files left in the output folder after the error: {leftover}")


def main():
    dev, test = read_sample("dev"), read_sample("test")
    subjects = sorted({r["subject"] for r in test})
    with tempfile.TemporaryDirectory() as tmp:
        # 1. all/ layout: test split in two shards, small row groups and batches that cross them.
        hf = os.path.join(tmp, "hf")
        half = len(test) // 2 + 1  # an odd cut, inside a subject
        write(os.path.join(hf, "all", "dev-00000-of-00001.parquet"), dev)
        write(os.path.join(hf, "all", "test-00000-of-00002.parquet"), test[:half])
        write(os.path.join(hf, "all", "test-00001-of-00002.parquet"), test[half:])
        write(os.path.join(hf, "all", "validation-00000-of-00001.parquet"), dev[::-1])
        write(os.path.join(hf, "all", "auxiliary_train-00000-of-00001.parquet"), dev)
        out = os.path.join(tmp, "out_all")
        run = convert([os.path.join(hf, "all")], out, "--batch-size", "3")
        if run.returncode != 0:
            fail(f"all/ layout: converter exited {run.returncode}: {run.stderr}")
        check_output("all/ layout", out, {"dev": dev, "test": test, "validation": dev[::-1]})
        if f"test: {len(test)} rows, {len(subjects)} subjects" not in run.stdout:
            fail(f"all/ layout: the summary does not report the test split: {run.stdout!r}")
        if "auxiliary_train" not in run.stderr:
            fail(f"all/ layout: no note about skipping auxiliary_train: {run.stderr!r}")

        # 2. per-subject folders, every other one without a subject column (taken from the folder name).
        ps = os.path.join(tmp, "per_subject")
        no_subject = pa.schema([f for f in SCHEMA if f.name != "subject"])
        for k, subject in enumerate(subjects):
            for split, records in (("dev", dev), ("test", test)):
                part = [r for r in records if r["subject"] == subject]
                path = os.path.join(ps, subject, f"{split}-00000-of-00001.parquet")
                if k % 2:
                    write(path, [{c: r[c] for c in ("question", "choices", "answer")} for r in part], no_subject)
                else:
                    write(path, part)
        out = os.path.join(tmp, "out_per_subject")
        run = convert([ps], out)
        if run.returncode != 0:
            fail(f"per-subject layout: converter exited {run.returncode}: {run.stderr}")
        check_output("per-subject layout", out, {"dev": dev, "test": test})
        # Subject folders given one by one, in reverse: the output is still in path order.
        out = os.path.join(tmp, "out_per_subject_listed")
        run = convert([os.path.join(ps, s) for s in reversed(subjects)], out)
        if run.returncode != 0:
            fail(f"per-subject folders listed: converter exited {run.returncode}: {run.stderr}")
        check_output("per-subject folders listed", out, {"dev": dev, "test": test})

        # 3. Broken inputs: exit 2, a message naming the file (and row and field), no output left.
        def broken(name, test_records, schema=SCHEMA):
            folder = os.path.join(tmp, "broken", name, "all")
            write(os.path.join(folder, "dev-00000-of-00001.parquet"), dev)
            path = os.path.join(folder, "test-00000-of-00001.parquet")
            write(path, test_records, schema)
            return folder, path

        def with_row(i, **change):
            records = [dict(r) for r in test]
            records[i].update(change)
            return records

        folder, path = broken("missing_column", [{c: r[c] for c in ("question", "subject", "answer")} for r in test],
                              pa.schema([f for f in SCHEMA if f.name != "choices"]))
        expect_error("missing column", [folder], os.path.join(tmp, "err1"), path, "choices")
        folder, path = broken("three_choices", with_row(4, choices=test[4]["choices"][:3]))
        expect_error("3 choices", [folder], os.path.join(tmp, "err2"), path, "row 5", "choices")
        folder, path = broken("answer_7", with_row(6, answer=7))
        expect_error("answer 7", [folder], os.path.join(tmp, "err3"), path, "row 7", "answer", "7")
        folder, path = broken("empty_subject", with_row(2, subject=""))
        expect_error("empty subject", [folder], os.path.join(tmp, "err4"), path, "row 3", "subject")
        expect_error("both layouts", [os.path.join(hf, "all"), ps], os.path.join(tmp, "err5"),
                     os.path.join(hf, "all"), ps, "pass one")
    # The JSONL content is what load_mmlu reads; running the chatmill binary on it is left to the C++ tests.
    print(f"PASS: {len(dev)} dev + {len(test)} test rows of {len(subjects)} subjects round-trip from the all/ and "
          "per-subject parquet layouts; 5 broken inputs exit 2 naming the file")


if __name__ == "__main__":
    main()
