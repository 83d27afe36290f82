#!/usr/bin/env python3
"""Encodes 250+ strings with the real Llama-2 tokenizer through two independent references and writes them
for tests/model/tokenizer_test.cpp:
  - sentencepiece (Python), the library Llama-2 was tokenised with: [bos] + encode(text);
  - transformers.AutoTokenizer on a folder holding tokenizer.model (transformers 5 converts it to its
    tokenizers backend; this is the tokenizer HF users get for Llama-2 checkpoints).
transformers 5's `LlamaTokenizer` class built from a bare tokenizer.model is *not* used: it rebuilds BPE merges
itself and differs from SentencePiece on whitespace runs (e.g. "  two  spaces"); see README.md.
HF also parses "<s>"/"</s>" in text as special tokens, which chatmill deliberately does not (ids, never text):
strings containing those are compared with sentencepiece only.
Exit code 77 (skipped) when the tokenizer file is not there.
"""
import json
import os
import random
import shutil
import sys
import tempfile

import sentencepiece as spm
from transformers import AutoTokenizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import hf_tokenizer_oracle  # noqa: E402

HANDWRITTEN = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "a", "A", "I", "Hello world", "Hello, world!",
    "  two  spaces", "trailing space ", " leading space", "multiple     spaces   inside", "tabs\tand\ttabs",
    "\t\tindented", "line one\nline two\nline three", "windows\r\nline endings\r\n", "mixed \t\n whitespace",
    "1234567890", "3.14159265358979", "-42", "1,000,000", "2023-11-27", "12:30:45", "0x1F600", "1e-5", "007",
    "emoji 😀 ok", "😀😃😄😁", "👍🏽", "👨‍👩‍👧‍👦 family", "🇫🇷🇯🇵", "❤️", "✅ done", "🤖🦙",
    "日本語テキスト", "中文文本测试", "한국어 텍스트", "Русский текст", "Ελληνικά", "עברית", "العربية",
    "हिन्दी पाठ", "ไทย", "Tiếng Việt có dấu", "Ünïcödé àçcéñts", "naïve café résumé", "Straße", "ﬁ ligature",
    "x=1+2; // code\n\tint y;", "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "#include <iostream>\nint main() { std::cout << \"hi\"; }", "SELECT * FROM users WHERE id = 1;",
    "{\"key\": [1, 2, {\"nested\": null}]}", "<html><body><p>Hi</p></body></html>", "a && b || !c",
    "import numpy as np\nnp.zeros((3, 4))", "x <- c(1, 2, 3)", "$ ls -la | grep .py", "C:\\Users\\name\\file.txt",
    "https://example.com/path?query=1&b=2#frag", "user@example.com", "@mention #hashtag", "`code` **bold** _it_",
    "- item\n- item\n  - nested", "| a | b |\n|---|---|\n| 1 | 2 |", "$$E = mc^2$$", "∑∫∂√∞≈≠≤≥", "½ ¾ ⅓",
    "“smart quotes” ‘single’", "em—dash – en-dash", "ellipsis…", "¡Hola! ¿Qué tal?", "©®™", "§¶†‡",
    "NAME_1 met NAME_2 at the café.", "USER: Hello! ASSISTANT: Hi!", "[INST] <<SYS>>\nsys\n<</SYS>>\n\nhi [/INST]",
    "A chat between a curious user and an artificial intelligence assistant.", "<s> literal", "</s>", "<unk>",
    "a\u00a0b", "zero\u200bwidth", "soft\u00adhyphen", "\u0001control", "tab\u000bvertical", "bell\u0007",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "𓀀 hieroglyph", "a" * 100, "ab" * 50, " " * 17, "\n" * 9, "." * 30, "!?" * 10,
    "The quick brown fox jumps over the lazy dog.", "THE QUICK BROWN FOX", "tHe QuIcK bRoWn",
    "don't can't won't it's", "rock'n'roll", "e.g. i.e. etc.", "Mr. Smith vs. Mrs. Jones", "U.S.A.",
]

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789", " ", "  \t\n", ".,;:!?'\"()[]{}<>-_=+*/\\|&^%$#@~`",
    "日本語中文한국어", "😀👍🏽🦙❤️✅", "éèêëàâäôöûüçñß", "абвгдежзийклмн", "αβγδεζηθ", "ابتثجحخد", "अआइईउऊ",
]


def generated(n, seed=1234):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pools = rng.sample(POOLS, rng.randint(1, 4))
        length = rng.randint(1, 40)
        out.append("".join(rng.choice(rng.choice(pools)) for _ in range(length)))
    return out


def main():
    model_file, out_file = sys.argv[1], sys.argv[2]
    if not os.path.exists(model_file):
        print(f"SKIPPED: {model_file} is not there (it comes from ../shared/data)")
        sys.exit(77)
    sp = spm.SentencePieceProcessor(model_file=model_file)
    tmp = tempfile.mkdtemp()
    shutil.copy(model_file, os.path.join(tmp, "tokenizer.model"))
    hf = AutoTokenizer.from_pretrained(tmp)
    usable, why = hf_tokenizer_oracle(hf, sp)
    if not usable:
        print(f"NOTE: {why}; the cases compare with SentencePiece only")
    cases = []
    for text in HANDWRITTEN + generated(200):
        sp_ids = [sp.bos_id()] + sp.encode(text)
        has_special_text = any(s in text for s in ("<s>", "</s>", "<unk>"))
        hf_ids = None
        if usable and not has_special_text:
            hf_ids = [sp.bos_id()] + hf(text, add_special_tokens=False)["input_ids"]
        cases.append({"text": text, "sp_ids": sp_ids, "hf_ids": hf_ids, "sp_decoded": sp.decode(sp_ids)})
    os.makedirs(os.path.dirname(out_file), exist_ok=True)
    with open(out_file, "w") as f:
        json.dump({"cases": cases, "bos": sp.bos_id(), "eos": sp.eos_id(), "vocab": sp.get_piece_size()}, f)
    disagree = sum(1 for c in cases if c["hf_ids"] is not None and c["hf_ids"] != c["sp_ids"])
    print(f"{len(cases)} strings; sentencepiece and transformers disagree on {disagree}")


if __name__ == "__main__":
    main()
