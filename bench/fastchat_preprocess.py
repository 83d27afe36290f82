#!/usr/bin/env python3
"""The Python peer of the data-pipeline benchmark: FastChat's supervised preprocessing, re-implemented.

    python3 bench/fastchat_preprocess.py --input data/sample/lmsys_chat_sample.jsonl \
        --tokenizer ../shared/data/tokenizer/llama2-tokenizer.model --max-length 2048 --template vicuna_v1.1

What FastChat's fastchat/train/train.py preprocess() does (written from its documented behaviour):
  1. each conversation becomes a Vicuna v1.1 prompt: "<system> USER: u1 ASSISTANT: a1</s>USER: u2 ASSISTANT: a2</s>"
     (a first message that is not from the user is dropped; roles must then alternate);
  2. the prompts are tokenised with the HF Llama tokenizer (BOS added), truncated and right-padded to
     --max-length with pad = unk;
  3. labels: the prompt string is split on "</s>", each turn on " ASSISTANT: ", and the user part of each turn
     is masked using token counts of separately tokenised pieces, with the hard-coded "-2" offset (BOS and the
     trailing space of "ASSISTANT: ") and FastChat's "-1" corrections when the tokenizer is not in legacy mode;
     if the counted length differs from the real one the whole sample is masked (FastChat prints a warning).
No packing: every sample is padded to max length, as FastChat does. Records are read as a stream and processed
--batch-size at a time (FastChat's SupervisedDataset passes everything at once, LazySupervisedDataset one).
The last line printed is a JSON summary.

The tokenizer folder is made from --tokenizer: tokenizer.model plus a tokenizer_config.json for LlamaTokenizer
(add BOS, no EOS, legacy as --legacy; Llama-2-7b-hf ships legacy false). With transformers 5 the Llama tokenizer
is the `tokenizers`-based one whatever use_fast says.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import transformers

IGNORE = -100  # FastChat's IGNORE_TOKEN_ID (LabelSmoother.ignore_index)
SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
ROLES = ("USER", "ASSISTANT")
SEP, SEP2 = " ", "</s>"  # after user turns / after assistant turns


def load_tokenizer(model_file, max_length, legacy):
    """AutoTokenizer on a temporary folder that looks like a Llama-2 HF checkpoint's tokenizer files."""
    tmp = tempfile.mkdtemp(prefix="fastchat_tok_")
    try:
        shutil.copy(model_file, os.path.join(tmp, "tokenizer.model"))
        with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
                       "legacy": legacy, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                       "clean_up_tokenization_spaces": False}, f)
        # As in FastChat's train(): model_max_length, right padding, slow tokenizer requested, pad = unk.
        tok = transformers.AutoTokenizer.from_pretrained(tmp, model_max_length=max_length, padding_side="right",
                                                         use_fast=False)
    finally:
        shutil.rmtree(tmp)
    tok.pad_token = tok.unk_token
    return tok


def vicuna_prompt(messages):
    """Conversation.get_prompt() for SeparatorStyle.ADD_COLON_TWO; messages are (role, text) pairs."""
    ret = SYSTEM + SEP
    for i, (role, text) in enumerate(messages):
        ret += (role + ": " + text + (SEP, SEP2)[i % 2]) if text else (role + ":")
    return ret


def to_source(record):
    """LMSYS-Chat-1M record -> ShareGPT conversation (user -> human, assistant -> gpt)."""
    names = {"user": "human", "assistant": "gpt"}
    return [{"from": names[m["role"]], "value": m["content"]} for m in record["conversation"]]


def preprocess(sources, tokenizer, stats):
    """FastChat's preprocess(): returns input_ids, labels, attention_mask (numpy, padded to max length)."""
    roles = {"human": ROLES[0], "gpt": ROLES[1]}
    conversations = []
    for source in sources:
        if roles[source[0]["from"]] != ROLES[0]:
            source = source[1:]  # skip a first message that is not from the user
        messages = []
        for j, sentence in enumerate(source):
            role = roles[sentence["from"]]
            assert role == ROLES[j % 2], "roles do not alternate"
            messages.append((role, sentence["value"]))
        conversations.append(vicuna_prompt(messages))

    input_ids = tokenizer(conversations, return_tensors="np", padding="max_length",
                          max_length=tokenizer.model_max_length, truncation=True).input_ids
    targets = input_ids.copy()
    legacy = getattr(tokenizer, "legacy", True)
    sep = SEP + ROLES[1] + ": "
    for conversation, target in zip(conversations, targets):
        total_len = int((target != tokenizer.pad_token_id).sum())
        turns = conversation.split(SEP2)
        cur_len = 1
        target[:cur_len] = IGNORE  # BOS
        for i, turn in enumerate(turns):
            if turn == "":
                break
            turn_len = len(tokenizer(turn).input_ids)
            parts = turn.split(sep)
            if len(parts) != 2:
                break
            parts[0] += sep
            # FastChat's hard-coded "-2" for the Llama tokenizer: the BOS and the trailing "▁" of "ASSISTANT: ".
            instruction_len = len(tokenizer(parts[0]).input_ids) - 2
            if i != 0 and not legacy:
                instruction_len -= 1  # non-legacy mode: "USER" after "</s>" gets no "▁" prefix
            target[cur_len:cur_len + instruction_len] = IGNORE
            cur_len += turn_len
            if i != 0 and not legacy:
                cur_len -= 1
        target[cur_len:] = IGNORE
        if cur_len < tokenizer.model_max_length and cur_len != total_len:
            target[:] = IGNORE  # FastChat: "WARNING: tokenization mismatch ... (ignored)"
            stats["mismatched"] += 1
        if total_len >= tokenizer.model_max_length:
            stats["truncated"] += 1
    return dict(input_ids=input_ids, labels=targets, attention_mask=input_ids != tokenizer.pad_token_id)


def batches(path, batch_size, limit, stats):
    """Streams sources from a JSON Lines file, batch_size at a time; skips lines FastChat could not use."""
    batch, n = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if limit is not None and n >= limit:
                break
            try:
                source = to_source(json.loads(line))
                roles = [s["from"] for s in source]
                start = 1 if roles and roles[0] != "human" else 0
                # FastChat would assert on these: count and skip them instead.
                if len(roles) <= start or any(r != ("human", "gpt")[k % 2] for k, r in enumerate(roles[start:])):
                    raise ValueError("roles do not alternate")
            except (ValueError, KeyError, TypeError):
                stats["skipped"] += 1
                continue
            batch.append(source)
            n += 1
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="LMSYS-Chat-1M JSON Lines")
    ap.add_argument("--tokenizer", required=True, help="Llama-2 tokenizer.model")
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--template", default="vicuna_v1.1", choices=["vicuna_v1.1"])
    ap.add_argument("--limit", type=int, default=None, help="process at most N conversations")
    ap.add_argument("--batch-size", type=int, default=64, help="conversations per preprocess() call")
    ap.add_argument("--legacy", choices=["true", "false"], default="false", help="the tokenizer's legacy flag")
    ap.add_argument("--dump", help="also write each sample's unpadded input_ids and labels to this JSON Lines file")
    args = ap.parse_args()

    t0 = time.time()
    tokenizer = load_tokenizer(args.tokenizer, args.max_length, args.legacy == "true")
    load_s = time.time() - t0

    stats = dict(conversations=0, tokens=0, trained_tokens=0, mismatched=0, truncated=0, skipped=0)
    dump = open(args.dump, "w", encoding="utf-8") if args.dump else None
    start = time.time()
    for sources in batches(args.input, args.batch_size, args.limit, stats):
        out = preprocess(sources, tokenizer, stats)
        stats["conversations"] += len(sources)
        stats["tokens"] += int(out["attention_mask"].sum())
        stats["trained_tokens"] += int((out["labels"] != IGNORE).sum())
        if dump:
            for ids, labels, mask in zip(out["input_ids"], out["labels"], out["attention_mask"]):
                n = int(mask.sum())
                dump.write(json.dumps({"input_ids": ids[:n].tolist(), "labels": labels[:n].tolist()}) + "\n")
    seconds = time.time() - start
    if dump:
        dump.close()
    if stats["mismatched"]:
        print(f"WARNING: tokenization mismatch in {stats['mismatched']} conversations (masked)", file=sys.stderr)
    summary = {k: stats[k] for k in ("conversations", "tokens", "trained_tokens")}
    summary.update(seconds=round(seconds, 3),
                   conversations_per_s=round(stats["conversations"] / seconds, 1) if seconds else None,
                   mismatched=stats["mismatched"], truncated=stats["truncated"], skipped=stats["skipped"],
                   tokenizer_load_seconds=round(load_s, 3), max_length=args.max_length, legacy=args.legacy == "true")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
