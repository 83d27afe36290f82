#!/usr/bin/env python3
"""The peer of bench_train_step: HF transformers LlamaForCausalLM, the same shape, batch and sequence, one
training step = forward (labels = inputs), backward, gradient clipping at 1.0, AdamW (no weight decay; fused on
CUDA), bf16 autocast when asked."""
import argparse
import json
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

PRESETS = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32),
    "tiny": dict(hidden_size=288, intermediate_size=768, num_hidden_layers=6, num_attention_heads=6, num_key_value_heads=6),
}


def write_profile(path, step, cuda, steps):
    """Runs `step` `steps` times under torch.profiler; writes the per-kernel (GPU) and per-operator (CPU) totals
    per step, largest first, as bench/op_profile.cpp writes chatmill's."""
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize()
    gpu, cpu = {}, {}
    for e in prof.events():
        on_gpu = e.device_type == torch.autograd.DeviceType.CUDA
        table = gpu if on_gpu else cpu
        calls, us = table.get(e.name, (0, 0.0))
        table[e.name] = (calls + 1, us + (e.device_time if on_gpu else e.cpu_time_total))
    with open(path, "w") as f:
        f.write(f"Profile of {steps} step(s), per step.\n\n")
        for title, table in ((("GPU kernels and copies (busy time)", gpu),) if cuda else ()) + (
                ("CPU operators (inclusive: nested calls overlap)", cpu),):
            total = sum(us for _, us in table.values())
            f.write(f"### {title}: {total / steps / 1e3:.2f} ms per step\n\n| name | calls per step | us per step | share |\n"
                    "|---|---|---|---|\n")
            for name, (calls, us) in sorted(table.items(), key=lambda kv: -kv[1][1])[:40]:
                name = (name if len(name) <= 110 else name[:107] + "...").replace("|", "/")
                f.write(f"| {name} | {calls / steps:g} | {us / steps:.1f} | {100 * us / total if total else 0:.1f}% |\n")
            f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out")
    ap.add_argument("--profile", help="after the timed steps, profile 2 more and write a per-kernel table here")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    shape = dict(PRESETS[a.preset])
    if a.layers:
        shape["num_hidden_layers"] = a.layers
    cfg = LlamaConfig(vocab_size=32000, max_position_embeddings=4096, **shape)
    with torch.device(a.device):
        model = LlamaForCausalLM(cfg)
    model.train()
    cuda = a.device.startswith("cuda")
    # The same step as chatmill's bench: no weight decay (its default, and the Vicuna recipe's), clipping at 1.0.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, fused=cuda)
    ids = torch.randint(3, 32000, (a.batch, a.seq), generator=torch.Generator().manual_seed(0)).to(a.device)
    def train_step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=a.precision != "float32"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()

    times = []
    for s in range(a.warmup + a.steps):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        train_step()
        if cuda:
            torch.cuda.synchronize()
        if s >= a.warmup:
            times.append(time.perf_counter() - t)
    if a.profile:  # after the timing, as bench_train_step does; the same table layout (bench/op_profile.h)
        write_profile(a.profile, train_step, cuda, steps=2)
    step = statistics.median(times)
    params = sum(p.numel() for p in model.parameters())
    tokens = a.batch * a.seq
    flops = 6 * params * tokens + 6 * cfg.num_hidden_layers * a.seq * cfg.hidden_size * tokens
    r = {"engine": "hf-transformers", "preset": a.preset, "layers": cfg.num_hidden_layers, "params": params,
         "device": a.device, "precision": a.precision, "batch": a.batch, "seq": a.seq, "threads": torch.get_num_threads(),
         "step_s": step, "tokens_per_s": tokens / step, "tflops": flops / step / 1e12}
    # Peak memory, measured as bench_train_step measures it.
    if cuda:
        r["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        import resource
        r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(r))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
