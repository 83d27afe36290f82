#!/usr/bin/env python3
"""MMLU reference predictions: hendrycks/test evaluate.py's prompt format (re-implemented here, independently of
chatmill), SentencePiece (Python) for the ids, HF transformers for the logits. For each test question of the
shipped sample: the 5-shot prompt, the four answer-token logits, the predicted letter.
Usage: mmlu_reference.py TESTDATA SAMPLE_MMLU_DIR TOKENIZER OUT.json"""
import csv
import glob
import json
import os
import sys

import sentencepiece as spm
import torch
from transformers import LlamaForCausalLM

CHOICES = ["A", "B", "C", "D"]


def format_subject(subject):
    return "".join(" " + w for w in subject.split("_"))  # evaluate.py: a space before every word


def format_example(row, include_answer):
    prompt = row[0]
    for j in range(4):
        prompt += "\n{}. {}".format(CHOICES[j], row[j + 1])
    prompt += "\nAnswer:"
    if include_answer:
        prompt += " {}\n\n".format(row[5])
    return prompt


def gen_prompt(dev, subject, k):
    prompt = "The following are multiple choice questions (with answers) about {}.\n\n".format(format_subject(subject))
    for i in range(k):
        prompt += format_example(dev[i], True)
    return prompt


def main():
    data, mmlu, tok_file, out = sys.argv[1:5]
    sp = spm.SentencePieceProcessor(model_file=tok_file)
    model = LlamaForCausalLM.from_pretrained(os.path.join(data, "models", "mha_untied"), dtype=torch.float32).eval()
    answer_ids = [sp.encode(c)[-1] for c in CHOICES]  # evaluate.py: tokenizer("A").input_ids[-1]
    res = []
    for path in sorted(glob.glob(os.path.join(mmlu, "test", "*_test.csv"))):
        subject = os.path.basename(path)[: -len("_test.csv")]
        dev = list(csv.reader(open(os.path.join(mmlu, "dev", subject + "_dev.csv"))))
        for i, row in enumerate(csv.reader(open(path))):
            prompt = gen_prompt(dev, subject, 5) + format_example(row, False)
            ids = torch.tensor([[sp.bos_id()] + sp.encode(prompt)])
            with torch.no_grad():
                logits = model(ids).logits[0, -1, answer_ids]
            res.append({"subject": subject, "index": i, "prediction": CHOICES[int(logits.argmax())],
                        "scores": logits.tolist(), "prompt": prompt})
    json.dump({"answer_ids": answer_ids, "predictions": res}, open(out, "w"))
    print(f"{len(res)} MMLU reference predictions")


if __name__ == "__main__":
    main()
