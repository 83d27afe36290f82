#!/usr/bin/env python3
"""On a CUDA machine (scripts/gpu_check.sh; exits 77, skipped, elsewhere): `chatmill train` on the GPU against
the same recipe on the CPU. Six steps of the debug model on the tokenised sample:
- float32 on CUDA follows the CPU's float32 losses (reduction order only);
- bf16-mixed on CUDA (bf16 compute, float32 master weights and AdamW state) stays close to them and falls;
- both write a checkpoint that HF-layout readers load (model.safetensors with float32 masters)."""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import BIN, expect, failures, run  # noqa: E402
from recipes import losses, tokenize_sample, write_recipe  # noqa: E402

SRC = os.environ["CHATMILL_SOURCE_DIR"]
OUT = os.path.join(os.environ["CHATMILL_TESTDATA"], "scratch", "check_train_gpu")
TOKENIZER = os.path.join(SRC, "data", "sample", "tokenizer.model")


def cuda_here():
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def train(name, device, precision):
    cfg, out = write_recipe(OUT, name, TOKENIZER, device=device, precision=precision, max_steps=6, every_steps=6,
                            keep_last=1)
    r = run("train", cfg, "--threads", "2")
    expect(r.returncode == 0, f"{name}: trained ({r.stderr.strip()[-300:]})")
    return (losses(out) if r.returncode == 0 else {}), out


def main():
    if not cuda_here():
        print("no CUDA device here: skipped (scripts/gpu_check.sh runs this on the GPU machine)")
        return 77
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    r = tokenize_sample(BIN, SRC, TOKENIZER, OUT)
    expect(r.returncode == 0, f"tokenize the sample ({r.stderr.strip()[:200]})")

    cpu, _ = train("cpu_f32", "cpu", "float32")
    gpu, gpu_out = train("cuda_f32", "cuda", "float32")
    bf16, bf16_out = train("cuda_bf16", "cuda", "bf16-mixed")
    if cpu and gpu:
        d = max(abs(gpu[s] - cpu[s]) / abs(cpu[s]) for s in cpu)
        print(f"cuda float32 vs cpu float32: max relative loss difference {d:.2e}")
        expect(sorted(gpu) == sorted(cpu) and d <= 1e-4, f"CUDA float32 follows the CPU's losses ({d:.2e} <= 1e-4)")
    if cpu and bf16:
        d = max(abs(bf16[s] - cpu[s]) / abs(cpu[s]) for s in cpu)
        print(f"cuda bf16-mixed vs cpu float32: max relative loss difference {d:.2e}")
        expect(d <= 3e-2, f"CUDA bf16-mixed stays within 3% of the float32 losses ({d:.2e})")
        expect(bf16[max(bf16)] < bf16[1], f"bf16-mixed loss falls ({bf16[1]:.3f} -> {bf16[max(bf16)]:.3f})")
    for out in (gpu_out, bf16_out):
        ck = os.path.join(out, "checkpoints")
        ok = os.path.isdir(ck) and any(os.path.exists(os.path.join(ck, d, "model", "model.safetensors"))
                                       for d in os.listdir(ck))
        expect(ok, f"{os.path.basename(out)}: checkpoint written")
    print("FAILED: " + "; ".join(failures) if failures else "all GPU training checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
