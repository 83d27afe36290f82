#!/usr/bin/env python3
"""Converts the released LMSYS-Chat-1M parquet shards to JSON Lines (one conversation a line).

    python3 scripts/parquet_to_jsonl.py data/train-0000*-of-00006-*.parquet --out lmsys.jsonl[.gz]

Keys come out in the release's column order (conversation_id, model, conversation, turn, language,
openai_moderation, redacted), messages as {content, role} and moderation entries as {categories,
category_scores, flagged} with the 11 categories in their fixed order: the same layout as
data/sample/lmsys_chat_sample.jsonl. Reads batch by batch within each row group, so memory stays bounded
(a shard is ~250 MB compressed). Needs pyarrow (pip install pyarrow==26.0.1). An output ending in .gz is
gzip-compressed; "-" writes to stdout.
"""
import argparse
import gzip
import json
import sys
import time

import pyarrow.parquet as pq

KEYS = ["conversation_id", "model", "conversation", "turn", "language", "openai_moderation", "redacted"]
CATEGORIES = ["harassment", "harassment/threatening", "hate", "hate/threatening", "self-harm",
              "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
              "violence/graphic"]


def ordered(d, keys):
    """d with the known keys first in the fixed order, then any others as stored (None stays None)."""
    if d is None:
        return None
    out = {k: d[k] for k in keys if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


def normalise(row):
    """Fixes the key order at every level, whatever the struct field order of the file is."""
    row = ordered(row, KEYS)
    if row.get("conversation") is not None:
        row["conversation"] = [ordered(m, ["content", "role"]) for m in row["conversation"]]
    if row.get("openai_moderation") is not None:
        mods = []
        for m in row["openai_moderation"]:
            m = ordered(m, ["categories", "category_scores", "flagged"])
            if m is not None:
                m["categories"] = ordered(m.get("categories"), CATEGORIES)
                m["category_scores"] = ordered(m.get("category_scores"), CATEGORIES)
            mods.append(m)
        row["openai_moderation"] = mods
    return row


def open_out(path):
    if path == "-":
        return sys.stdout
    if path.endswith(".gz"):
        return gzip.open(path, "wt", encoding="utf-8", newline="\n")
    return open(path, "w", encoding="utf-8", newline="\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="parquet files, converted in the order given")
    ap.add_argument("--out", required=True, help="output .jsonl, .jsonl.gz, or - for stdout")
    ap.add_argument("--batch-size", type=int, default=2048, help="rows decoded at a time (bounds memory)")
    args = ap.parse_args()

    start, n = time.time(), 0
    out = open_out(args.out)
    try:
        for path in args.inputs:
            pf = pq.ParquetFile(path)
            for batch in pf.iter_batches(batch_size=args.batch_size, columns=None):
                # to_pylist gives plain Python values: doubles stay exact, so json's repr round-trips them.
                out.writelines(json.dumps(normalise(row), ensure_ascii=False) + "\n" for row in batch.to_pylist())
                n += batch.num_rows
            print(f"{path}: {pf.metadata.num_rows} rows in {pf.metadata.num_row_groups} row groups",
                  file=sys.stderr)
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"wrote {n} conversations to {args.out} in {time.time() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
