#!/usr/bin/env python3
"""Trains the small SentencePiece tokenizer shipped in data/sample/ from data/sample/corpus.txt.

It has the Llama-2 tokenizer's conventions (BPE, byte fallback, unk 0 / bos 1 / eos 2, a dummy prefix, no
normalisation) at 512 pieces, so the demo model and the tests that need a tokenizer run without the real
Llama-2 file. Run it again only to change the sample: the committed .model is its output.
"""
import os
import sentencepiece as spm

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "sample")
spm.SentencePieceTrainer.train(
    input=os.path.join(here, "corpus.txt"), model_prefix=os.path.join(here, "tokenizer"), model_type="bpe",
    vocab_size=512, byte_fallback=True, split_digits=True, normalization_rule_name="identity",
    unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0, num_threads=1,
    add_dummy_prefix=True, remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
    hard_vocab_limit=False, minloglevel=2)
os.remove(os.path.join(here, "tokenizer.vocab"))
