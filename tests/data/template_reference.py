#!/usr/bin/env python3
"""Reference renderings and labels for chatmill's chat templates, computed independently of chatmill:

- the prompt string is rendered the way FastChat's conversation.py does (vicuna_v1.1: ADD_COLON_TWO with
  sep " " and sep2 "</s>"; llama-2: LLAMA2 style, "[INST] <<SYS>>..." with sep2 " </s><s>");
- ids come from transformers.AutoTokenizer on the real Llama-2 tokenizer.model, applied to the whole string
  (it turns "<s>"/"</s>" in the text into bos/eos ids);
- labels come from character spans: a token is trained when its offsets lie inside an assistant reply span
  (the separator space, the reply, and for llama-2 the space before </s>), and the </s> closing a reply is
  trained. No segment-wise tokenisation is involved.

chatmill differs from FastChat in one documented way: it does not append the dangling "<s>" that llama-2's
sep2 leaves after the last reply (it is stripped here). Writes OUT (JSON). Exit 77 when the tokenizer is absent.
Usage: template_reference.py LLAMA2_TOKENIZER SAMPLE_LMSYS.jsonl OUT.json
"""
import json
import os
import shutil
import sys
import tempfile

VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                 "helpful, detailed, and polite answers to the user's questions.")

# Hand-written edge cases (templates x systems are applied to each).
EDGE_CASES = [
    ["Hello!", "Hi! How can I help?"],
    ["Hi", "Hello", "How are you?", "I'm fine, thanks.", "Great.", "Bye!"],
    ["  leading and trailing spaces  ", "  reply with spaces  "],
    ["line one\nline two\n", "\nreply starting with a newline"],
    ["tabs\there", "\ttabbed reply\t"],
    ["Ünïcödé, 日本語, emoji 😀👍🏽", "Réponse: 中文 🦙 ok"],
    ["code please", "```python\ndef f(x):\n    return x * 2\n```"],
    ["numbers 12345 and 3.14", "67890"],
    ["What is NAME_1's job?", "NAME_1 is a teacher."],
    ["a", "b"],
]


def render_vicuna(msgs, system):
    ret = system + " "
    seps = [" ", "</s>"]
    spans = []  # (start, end) of trained text in ret
    for i, m in enumerate(msgs):
        role = "USER" if i % 2 == 0 else "ASSISTANT"
        if i % 2 == 1:
            ret += role + ":"
            spans.append((len(ret), len(ret) + 1 + len(m)))
            ret += " " + m + seps[1]
        else:
            ret += role + ": " + m + seps[0]
    return "<s>" + ret, [(a + 3, b + 3) for a, b in spans]


def render_llama2(msgs, system):
    ret = f"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n" if system else "[INST] "
    spans = []
    for i, m in enumerate(msgs):
        if i == 0:
            ret += m + " "
        elif i % 2 == 1:
            ret += "[/INST]"
            spans.append((len(ret), len(ret) + len(m) + 2))
            ret += " " + m + " </s><s>"
        else:
            ret += "[INST] " + m + " "
    assert ret.endswith("<s>")
    return "<s>" + ret[: -len("<s>")], [(a + 3, b + 3) for a, b in spans]


def label(tok, text, spans):
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = []
    for k, (tid, (a, b)) in enumerate(zip(ids, offsets)):
        if tid == tok.eos_token_id:
            # The </s> that closes a reply: its text starts where a span ends.
            trained = any(a == end for _, end in spans)
        else:
            trained = any(start <= a and b <= end and b > a for start, end in spans)
        labels.append(tid if trained else -100)
    return ids, labels


def main():
    tok_file, sample, out = sys.argv[1], sys.argv[2], sys.argv[3]
    if not os.path.exists(tok_file):
        print(f"SKIPPED: {tok_file} is not there (it comes from ../shared/data)")
        sys.exit(77)
    from transformers import AutoTokenizer
    tmp = tempfile.mkdtemp()
    shutil.copy(tok_file, os.path.join(tmp, "tokenizer.model"))
    tok = AutoTokenizer.from_pretrained(tmp)
    import sentencepiece as spm
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
    from checks import hf_tokenizer_oracle
    usable, why = hf_tokenizer_oracle(tok, spm.SentencePieceProcessor(model_file=tok_file))
    if not usable:  # the ids and labels come from transformers alone: nothing to compare with
        print(f"SKIPPED: {why}")
        sys.exit(77)

    convs = []
    with open(sample, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            msgs = [m["content"] for m in r["conversation"]]
            convs.append(msgs[: len(msgs) // 2 * 2])  # complete exchanges only, as chatmill trains
    convs += EDGE_CASES
    cases = []
    for msgs in convs:
        if any(s in m for m in msgs for s in ("<s>", "</s>", "<unk>")):
            continue  # HF would read these as special tokens; chatmill keeps them as text
        for template, systems in (("vicuna_v1.1", [None, ""]), ("llama-2", [None, "You are a helpful assistant."])):
            for system in systems:
                if template == "vicuna_v1.1":
                    text, spans = render_vicuna(msgs, VICUNA_SYSTEM if system is None else system)
                else:
                    text, spans = render_llama2(msgs, "" if system is None else system)
                ids, labels = label(tok, text, spans)
                cases.append({"template": template, "system": system, "messages": msgs, "text": text,
                              "ids": ids, "labels": labels})
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"cases": cases}, f, ensure_ascii=False)
    print(f"{len(cases)} template cases from {len(convs)} conversations")


if __name__ == "__main__":
    main()
