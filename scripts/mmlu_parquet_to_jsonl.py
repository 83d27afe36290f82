#!/usr/bin/env python3
"""Converts the Hugging Face cais/mmlu parquet files to the JSONL layout that chatmill's MMLU loader reads
(src/eval/mmlu.cpp): DIR/dev.jsonl and DIR/test.jsonl (and DIR/validation.jsonl when given), one record a line:
{"subject": str, "question": str, "choices": [4 strings], "answer": 0..3}.

    python3 scripts/mmlu_parquet_to_jsonl.py --input mmlu/all --out data/mmlu_jsonl
    python3 scripts/mmlu_parquet_to_jsonl.py --input mmlu/abstract_algebra mmlu/anatomy --out data/mmlu_jsonl

Inputs are parquet files or folders (searched recursively for *.parquet). The split comes from the file name:
dev-*, test-*, validation-*; auxiliary_train-* is skipped. Either the all/ layout (all/test-00000-of-00001.parquet)
or per-subject folders (<subject>/test-00000-of-00001.parquet); a per-subject file without a subject column takes
the folder name. Passing both layouts for the same split would duplicate every question, so it is refused.
Within a split, files are read in path order (shards -00000-, -00001-, ... in sequence) and rows in file order:
the loader numbers each subject's questions in that order and takes the first dev rows as the few-shot examples.
Rows are streamed in record batches. Bad input (missing column, choices not 4 strings, answer outside 0..3, empty
subject) stops with exit code 2 and a message naming the file, row (counted from 1) and field; no output is left
behind. Needs pyarrow (pip install pyarrow==26.0.1).
"""
import argparse
import json
import os
import re
import sys

import pyarrow.parquet as pq

SPLITS = ("dev", "test", "validation")
SPLIT_RE = re.compile(r"^(dev|test|validation|auxiliary_train)(-|\.parquet$)")
COLUMNS = ("question", "subject", "choices", "answer")


class InputError(Exception):
    pass


def find_files(inputs):
    """Every parquet file named by inputs (folders searched recursively), each once."""
    files, seen = [], set()
    for path in inputs:
        if os.path.isdir(path):
            found = sorted(os.path.join(d, f) for d, _, names in os.walk(path) for f in names if f.endswith(".parquet"))
            if not found:
                raise InputError(f"{path}: no .parquet files in this folder")
        elif os.path.isfile(path):
            found = [path]
        else:
            raise InputError(f"{path}: no such file or folder")
        for f in found:
            if os.path.realpath(f) not in seen:
                seen.add(os.path.realpath(f))
                files.append(f)
    return files


def plan(files):
    """{split: [(path, folder subject or None for all/)]}, in path order; refuses mixed layouts."""
    by_split = {}
    for path in files:
        m = SPLIT_RE.match(os.path.basename(path))
        if not m:
            raise InputError(f"{path}: cannot tell the split from the file name (expected dev-, test-, validation- "
                             "or auxiliary_train-)")
        if m.group(1) == "auxiliary_train":
            print(f"note: skipping {path} (auxiliary_train is not part of the benchmark)", file=sys.stderr)
            continue
        folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
        by_split.setdefault(m.group(1), []).append((path, None if folder == "all" else folder))
    for split, entries in by_split.items():
        entries.sort(key=lambda e: e[0])
        whole = [p for p, s in entries if s is None]
        per_subject = [p for p, s in entries if s is not None]
        if whole and per_subject:
            raise InputError(f"split '{split}' comes from both the all/ layout ({whole[0]}) and per-subject folders "
                             f"({per_subject[0]}): that would repeat every question; pass one of them as --input")
        if len({os.path.dirname(os.path.abspath(p)) for p in whole}) > 1:
            raise InputError(f"split '{split}' comes from more than one all/ folder ({', '.join(whole)}); pass one")
    for split in ("dev", "test"):
        if split not in by_split:
            raise InputError(f"no {split}-*.parquet among the inputs; chatmill needs both dev (few-shot examples) "
                             "and test")
    return by_split


def rows(path, folder_subject, batch_size):
    """Yields checked records of one file, in file order."""
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for a file that is not parquet
        raise InputError(f"{path}: cannot read as parquet: {e}")
    names = pf.schema_arrow.names
    missing = [c for c in COLUMNS if c not in names and not (c == "subject" and folder_subject)]
    if missing:
        raise InputError(f"{path}: missing column '{missing[0]}' (the file has: {', '.join(names)})")
    columns = [c for c in COLUMNS if c in names]
    n = 0
    for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
        data = {c: batch.column(c).to_pylist() for c in columns}
        for i in range(batch.num_rows):
            n += 1
            rec = {c: data[c][i] for c in columns}
            where = f"{path}: row {n}"
            subject = rec.get("subject", folder_subject)
            if not isinstance(subject, str) or not subject:
                raise InputError(f"{where}: field 'subject' is empty")
            if not isinstance(rec["question"], str):
                raise InputError(f"{where}: field 'question' is not a string: {rec['question']!r}")
            choices = rec["choices"]
            if not isinstance(choices, list) or len(choices) != 4 or not all(isinstance(c, str) for c in choices):
                raise InputError(f"{where}: field 'choices' must be 4 strings, got {choices!r}")
            answer = rec["answer"]
            if isinstance(answer, str) and answer in ("A", "B", "C", "D"):
                answer = "ABCD".index(answer)
            if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer <= 3:
                raise InputError(f"{where}: field 'answer' must be 0..3 (A..D), got {answer!r}")
            yield {"subject": subject, "question": rec["question"], "choices": choices, "answer": answer}


def convert(by_split, out_dir, batch_size):
    os.makedirs(out_dir, exist_ok=True)
    summary, written = {}, []
    try:
        for split in SPLITS:
            if split not in by_split:
                continue
            final = os.path.join(out_dir, split + ".jsonl")
            tmp = final + ".partial"
            written.append(tmp)
            counts = {}
            with open(tmp, "w", encoding="utf-8", newline="\n") as out:
                for path, folder_subject in by_split[split]:
                    for rec in rows(path, folder_subject, batch_size):
                        out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                        counts[rec["subject"]] = counts.get(rec["subject"], 0) + 1
            summary[split] = counts
        missing_dev = sorted(set(summary["test"]) - set(summary["dev"]))
        if missing_dev:
            raise InputError(f"subjects with test questions but no dev questions for the shots: {', '.join(missing_dev)}")
        for tmp in written:
            os.replace(tmp, tmp[:-len(".partial")])
    finally:
        for tmp in written:
            if os.path.exists(tmp):
                os.remove(tmp)
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", nargs="+", required=True, metavar="PATH", help="parquet files or folders")
    ap.add_argument("--out", required=True, metavar="DIR", help="folder for dev.jsonl, test.jsonl (validation.jsonl)")
    ap.add_argument("--batch-size", type=int, default=4096, help="rows decoded at a time (bounds memory)")
    args = ap.parse_args()
    try:
        summary = convert(plan(find_files(args.input)), args.out, args.batch_size)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    for split, counts in summary.items():
        print(f"{split}: {sum(counts.values())} rows, {len(counts)} subjects -> {os.path.join(args.out, split + '.jsonl')}")
    subjects = sorted(set().union(*summary.values()))
    print(f"subjects ({len(subjects)}): {', '.join(subjects)}")


if __name__ == "__main__":
    main()
