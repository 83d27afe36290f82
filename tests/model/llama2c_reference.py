#!/usr/bin/env python3
"""Reference logits for a llama2.c legacy checkpoint (stories260K), computed in Meta's own layout: rotary
embeddings on interleaved pairs (2j, 2j+1) as complex numbers, no HF permutation. chatmill converts the same
file to HF's rotate-half layout; equal logits prove the conversion. Exit 77 (skipped) if the file is absent.
"""
import os
import struct
import sys

import numpy as np
import torch
from safetensors.torch import save_file


def load(path):
    with open(path, "rb") as f:
        dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack("7i", f.read(28))
        data = np.frombuffer(f.read(), dtype=np.float32)
    shared = vocab > 0
    vocab = abs(vocab)
    hd = dim // heads
    kv = kv_heads * hd
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        t = torch.from_numpy(data[pos:pos + n].copy()).view(*shape)
        pos += n
        return t

    w = dict(emb=take(vocab, dim), att_norm=take(layers, dim), wq=take(layers, dim, dim), wk=take(layers, kv, dim),
             wv=take(layers, kv, dim), wo=take(layers, dim, dim), ffn_norm=take(layers, dim),
             w1=take(layers, hidden, dim), w2=take(layers, dim, hidden), w3=take(layers, hidden, dim),
             norm=take(dim))
    take(seq_len * hd // 2)
    take(seq_len * hd // 2)
    w["out"] = w["emb"] if shared else take(vocab, dim)
    assert pos == data.size, "file size does not match its header"
    cfg = dict(dim=dim, layers=layers, heads=heads, kv_heads=kv_heads, hd=hd, vocab=vocab)
    return cfg, w


def rms(x, g, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


def rotary(x, freqs):  # x: (T, H, hd), rotating interleaved pairs as complex numbers
    xc = torch.view_as_complex(x.double().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * freqs[:, None, :]).flatten(-2)


def forward(cfg, w, tokens):
    T, hd = len(tokens), cfg["hd"]
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.polar(torch.ones(T, hd // 2, dtype=torch.float64), torch.outer(torch.arange(T, dtype=torch.float64), inv))
    x = w["emb"][tokens].double()
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    rep = cfg["heads"] // cfg["kv_heads"]
    for l in range(cfg["layers"]):
        h = rms(x, w["att_norm"][l].double())
        q = (h @ w["wq"][l].double().T).view(T, cfg["heads"], hd)
        k = (h @ w["wk"][l].double().T).view(T, cfg["kv_heads"], hd)
        v = (h @ w["wv"][l].double().T).view(T, cfg["kv_heads"], hd)
        q, k = rotary(q, freqs), rotary(k, freqs)
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        att = torch.einsum("qhd,khd->hqk", q, k) / hd ** 0.5 + mask
        o = torch.einsum("hqk,khd->qhd", att.softmax(-1), v).reshape(T, -1)
        x = x + o @ w["wo"][l].double().T
        h = rms(x, w["ffn_norm"][l].double())
        x = x + (torch.nn.functional.silu(h @ w["w1"][l].double().T) * (h @ w["w3"][l].double().T)) @ w["w2"][l].double().T
    return rms(x, w["norm"].double()) @ w["out"].double().T


def main():
    src, out = sys.argv[1], sys.argv[2]
    if not os.path.exists(src):
        print(f"SKIPPED: {src} is not there (it comes from ../shared/data)")
        sys.exit(77)
    cfg, w = load(src)
    tokens = torch.tensor([1, 403, 407, 261, 378, 425, 363, 290, 340, 402, 264, 336, 300, 263, 489, 353, 271, 432, 284, 399])
    logits = forward(cfg, w, tokens).float()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    save_file({"tokens": tokens.unsqueeze(0), "logits": logits.unsqueeze(0).contiguous()}, out)
    print(f"stories260K reference logits {tuple(logits.shape)}; max |logit| {logits.abs().max():.3f}")


if __name__ == "__main__":
    main()
