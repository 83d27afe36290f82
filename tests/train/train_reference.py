#!/usr/bin/env python3
"""References for chatmill's training math, from PyTorch and HF transformers:
  ref/grads_<model>.safetensors  a batch with masked labels; HF's loss (mean over trained tokens, shifted) and
                                 the gradient of every parameter (float32)
  ref/adamw.safetensors          torch.optim.AdamW (single-tensor path) on random tensors: parameters after each
                                 of 5 steps, with and without weight decay
  ref/schedules.json             HF's warmup + cosine / linear / constant learning rates per step
Usage: train_reference.py TESTDATA (reads TESTDATA/models from make_reference.py)."""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import LlamaForCausalLM, get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup, \
    get_linear_schedule_with_warmup


def grads(data, name):
    model = LlamaForCausalLM.from_pretrained(os.path.join(data, "models", name), dtype=torch.float32)
    model.train()
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(3, model.config.vocab_size, (2, 16), generator=gen)
    labels = ids.clone()
    labels[:, :5] = -100                     # a prompt that is not trained
    labels[1, 9:11] = -100                   # and a masked span in the middle
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    tensors = {"input_ids": ids, "labels": labels, "loss": out.loss.detach().reshape(1)}
    for n, p in model.named_parameters():
        tensors["grad." + n] = p.grad.detach().contiguous()
    save_file(tensors, os.path.join(data, "ref", f"grads_{name}.safetensors"))


def adamw(data):
    gen = torch.Generator().manual_seed(5)
    out = {}
    for wd in (0.0, 0.1):
        p = torch.randn(7, 5, generator=gen)
        out[f"wd{wd}.init"] = p.clone()
        p = torch.nn.Parameter(p)
        opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=wd, foreach=False, fused=False)
        for step in range(5):
            g = torch.randn(7, 5, generator=gen)
            out[f"wd{wd}.grad{step}"] = g.clone()
            p.grad = g
            opt.step()
            out[f"wd{wd}.param{step}"] = p.detach().clone()
    save_file(out, os.path.join(data, "ref", "adamw.safetensors"))


def schedules(data):
    res = {}
    for kind, make in (("cosine", get_cosine_schedule_with_warmup), ("linear", get_linear_schedule_with_warmup),
                       ("constant", None)):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=2e-5)
        if kind == "constant":
            sched = get_constant_schedule_with_warmup(opt, num_warmup_steps=3)
        else:
            sched = make(opt, num_warmup_steps=3, num_training_steps=40)
        lrs = []
        for _ in range(40):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        res[kind] = lrs
    with open(os.path.join(data, "ref", "schedules.json"), "w") as f:
        json.dump(res, f)


def main():
    data = sys.argv[1]
    torch.manual_seed(0)
    for name in ("mha_untied", "gqa_tied"):
        grads(data, name)
    adamw(data)
    schedules(data)
    print("training references written")


if __name__ == "__main__":
    main()
