#!/usr/bin/env python3
"""The peer: HF transformers `generate` on the same model, batch and prompt lengths as bench_generate.
Time to first token = generate(max_new_tokens=1); decode tokens/s = B*(N-1) / (generate(N) - ttft).
Prints one JSON line (appended to --out)."""
import argparse
import json
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

PRESETS = {  # the shapes of chatmill's presets (src/model/config.cpp)
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32),
    "tiny": dict(hidden_size=288, intermediate_size=768, num_hidden_layers=6, num_attention_heads=6,
                 num_key_value_heads=6),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--preset")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[a.dtype]
    if a.model:
        model = LlamaForCausalLM.from_pretrained(a.model, dtype=dtype).to(a.device)
    else:
        cfg = LlamaConfig(vocab_size=32000, max_position_embeddings=4096, **PRESETS[a.preset])
        with torch.device(a.device):
            model = LlamaForCausalLM._from_config(cfg, dtype=dtype)
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    ids = torch.randint(3, model.config.vocab_size, (a.batch, a.prompt_len), generator=gen).to(a.device)
    mask = torch.ones_like(ids)

    def run(n):
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        assert out.shape[1] == a.prompt_len + n
        return time.perf_counter() - t

    ttft, decode = [], []
    for i in range(a.warmup + a.repeats):
        t1 = run(1)
        tn = run(a.new_tokens)
        if i >= a.warmup:
            ttft.append(t1)
            decode.append(a.batch * (a.new_tokens - 1) / (tn - t1))
    med_ttft = statistics.median(ttft)
    res = {"engine": "hf-transformers", "model": a.model or a.preset,
           "params": sum(p.numel() for p in model.parameters()), "dtype": a.dtype, "device": a.device,
           "threads": torch.get_num_threads(), "batch": a.batch, "prompt_len": a.prompt_len,
           "new_tokens": a.new_tokens, "ttft_s": med_ttft, "prefill_tokens_per_s": a.batch * a.prompt_len / med_ttft,
           "decode_tokens_per_s": statistics.median(decode), "repeats": a.repeats}
    print(json.dumps(res))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
