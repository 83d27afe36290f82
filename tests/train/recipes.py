"""What the Python training checks share: the tokenised sample, a small recipe (the debug model, 2 x 4
micro-batches), and the losses a run logged."""
import json
import os
import subprocess


def tokenize_sample(bin_path, src, tokenizer, out_dir):
    """Tokenises the embedded LMSYS sample into OUT_DIR/train.h5; returns the CompletedProcess."""
    cfg = os.path.join(out_dir, "tokenize.yaml")
    with open(cfg, "w") as f:
        f.write(f"inputs: [{os.path.join(src, 'data', 'sample', 'lmsys_chat_sample.jsonl')}]\ntokenizer: {tokenizer}\n"
                f"max_length: 128\npacking: packed\noutput: {os.path.join(out_dir, 'train.h5')}\n")
    return subprocess.run([bin_path, "data", "tokenize", cfg], capture_output=True, text=True)


def write_recipe(out_dir, name, tokenizer, device="cpu", precision="float32", max_steps=12, every_steps=4, keep_last=3):
    """OUT_DIR/NAME.yaml training on OUT_DIR/train.h5 into OUT_DIR/NAME; returns (config path, output dir)."""
    out = os.path.join(out_dir, name)
    text = f"""model: {{preset: debug, tokenizer: {tokenizer}, device: {device}, precision: {precision}}}
data: {{store: {os.path.join(out_dir, 'train.h5')}, micro_batch_size: 2, global_batch_size: 8}}
optimizer: {{lr: 3.0e-3, weight_decay: 0.01, grad_clip: 1.0}}
schedule: {{kind: cosine, warmup_steps: 2}}
run: {{epochs: 100, max_steps: {max_steps}, seed: 0, output_dir: {out}}}
checkpoint: {{every_steps: {every_steps}, keep_last: {keep_last}}}
logging: {{every_steps: 1, progress: false}}
"""
    path = os.path.join(out_dir, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    return path, out


def losses(out):
    """step -> loss, the last record of each step winning (a resumed run repeats steps after its checkpoint)."""
    res = {}
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if "loss" in r:
                res[r["step"]] = r["loss"]
    return res
