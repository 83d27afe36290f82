#!/usr/bin/env python3
"""`chatmill train` as users run it, in real processes:
- 2 ranks (two processes, c10d Gloo over loopback) vs 1 rank with the same global batch, for ddp, zero1, zero2
  and zero3: losses and final weights equal within 1e-6;
- kill -9 mid-training, and once mid-save, then resume: the loss sequence equals an uninterrupted run's, bit
  for bit, and the last committed checkpoint is intact;
- SIGTERM (one rank) and SIGUSR1 to one of two ranks: every rank stops before the same step, saves, exits 128 +
  the signal; resuming continues to the same losses; SIGTERM during an evaluation stops it at once, on one
  rank or two;
- a tiny model on the embedded sample: the loss falls well below its start;
- clear errors: bad config, missing store, tokenizer mismatch, a rank that dies.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import BIN, expect, failures, free_port  # noqa: E402
from recipes import losses, tokenize_sample, write_recipe  # noqa: E402

SRC = os.environ["CHATMILL_SOURCE_DIR"]
SHARED = os.environ.get("CHATMILL_SHARED_DATA", "")
OUT = os.path.join(os.environ["CHATMILL_TESTDATA"], "scratch", "check_train_cli")
TOKENIZER = os.path.join(SRC, "data", "sample", "tokenizer.model")


def config(name):
    """A small recipe: the debug model on the sample store, 12 steps, a checkpoint every 4."""
    return write_recipe(OUT, name, TOKENIZER)


def env_for(rank, world, port):
    e = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
             MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    return e


def train(cfg, *overrides, env=None):
    return subprocess.run([BIN, "train", cfg, *overrides, "--threads", "1"], capture_output=True, text=True,
                          env=env or dict(os.environ, OMP_NUM_THREADS="1"))


def checkpoints(out):
    """The run's committed checkpoint folders (step-NNNNNNNN), oldest first."""
    ck = os.path.join(out, "checkpoints")
    return sorted(d for d in os.listdir(ck) if d.startswith("step-")) if os.path.isdir(ck) else []


def eval_events(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r.get("event") == "eval"]


def final_weights(out):
    return load_file(os.path.join(out, "checkpoints", checkpoints(out)[-1], "model", "model.safetensors"))


def wait_for(pred, timeout=120):
    t = time.time()
    while time.time() - t < timeout:
        if pred():
            return True
        time.sleep(0.05)
    return False


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    r = tokenize_sample(BIN, SRC, TOKENIZER, OUT)
    expect(r.returncode == 0, f"tokenize the sample ({r.stderr.strip()[:200]})")

    # The uninterrupted single-rank reference.
    cfg, ref_out = config("ref")
    r = train(cfg)
    expect(r.returncode == 0, f"reference run ({r.stderr.strip()[-300:]})")
    ref = losses(ref_out)
    expect(sorted(ref) == list(range(1, 13)), "12 steps logged")
    ref_w = final_weights(ref_out)

    # 2 ranks vs 1, per strategy.
    for strategy in ("ddp", "zero1", "zero2", "zero3"):
        cfg, out = config("two_" + strategy)
        port = free_port()
        procs = [subprocess.Popen([BIN, "train", cfg, f"parallel.strategy={strategy}", "parallel.timeout_s=60",
                                   "--threads", "1"], env=env_for(rank, 2, port), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for rank in range(2)]
        outs = [p.communicate(timeout=600) for p in procs]
        ok = all(p.returncode == 0 for p in procs)
        expect(ok, f"{strategy}: two ranks finished ({' | '.join(o[1].strip()[-200:] for o in outs)})")
        if not ok:
            continue
        got = losses(out)
        # float32 sums in another order: weights agree to ~1 ulp; losses (about 6) to a few ulps, so their bound
        # is relative.
        dl = max(abs(got[s] - ref[s]) / max(1.0, abs(ref[s])) for s in ref)
        w = final_weights(out)
        dw = max(float(np.abs(w[k] - ref_w[k]).max()) for k in ref_w)
        expect(sorted(got) == sorted(ref) and dl <= 1e-6 and dw <= 1e-6,
               f"{strategy}: 2 ranks vs 1: max relative loss diff {dl:.2e}, max weight diff {dw:.2e}")
        # `chatmill plan` predicts what each rank allocated.
        mem = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if '"memory"' in l][0]
        p = subprocess.run([BIN, "plan", cfg, f"parallel.strategy={strategy}", "--world-size", "2", "--json"],
                           capture_output=True, text=True)
        plan = json.loads(p.stdout) if p.returncode == 0 else {}
        expect(all(plan.get(k) == mem[k] for k in ("params_bytes", "grads_bytes", "optimizer_bytes")),
               f"{strategy}: plan = measured per rank (params {mem['params_bytes']}, grads {mem['grads_bytes']}, "
               f"optimizer {mem['optimizer_bytes']} bytes)")

    # Activation checkpointing changes memory, not numbers; bf16-mixed runs close to float32.
    cfg, out = config("checkpointing")
    r = train(cfg, "model.activation_checkpointing=true")
    got = losses(out)
    dl = max(abs(got[s] - ref[s]) / max(1.0, abs(ref[s])) for s in ref) if r.returncode == 0 else 1
    expect(dl <= 1e-6, f"activation checkpointing: same losses (max relative diff {dl:.1e})")
    cfg, out = config("bf16")
    r = train(cfg, "model.precision=bf16-mixed")
    got = losses(out)
    dl = max(abs(got[s] - ref[s]) / abs(ref[s]) for s in ref) if r.returncode == 0 else 1
    expect(dl < 0.05, f"bf16-mixed: losses within 5% of float32 (max relative diff {dl:.1e})")

    # Non-finite loss: stop naming the step and tensor, or skip and go on.
    cfg, out = config("nan_stop")
    r = train(cfg, "optimizer.lr=1.0e+6", "optimizer.grad_clip=0", "checkpoint.every_steps=1")
    expect(r.returncode == 2 and "non-finite values in" in r.stderr and "step " in r.stderr and
           "is untouched" in r.stderr, f"non-finite: the run stops and says where ({r.stderr.strip()[-250:]})")
    ck = checkpoints(out)
    g = subprocess.run([BIN, "generate", "--model", os.path.join(out, "checkpoints", ck[-1], "model"), "--prompt-ids", "1",
                        "--max-new-tokens", "2"], capture_output=True, text=True) if ck else None
    expect(bool(ck) and g.returncode == 0, "the last good checkpoint still loads")
    cfg, out = config("nan_skip")
    r = train(cfg, "optimizer.lr=1.0e+6", "optimizer.grad_clip=0", "run.on_non_finite=skip")
    skipped = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if '"skipped"' in l]
    expect(r.returncode == 0 and skipped and "skipped" in r.stdout, f"non-finite with skip: {len(skipped)} steps skipped, run finished")

    # kill -9 mid-training, resume: identical losses.
    cfg, out = config("killed")
    p = subprocess.Popen([BIN, "train", cfg, "--threads", "1"], env=dict(os.environ, OMP_NUM_THREADS="1"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = wait_for(lambda: os.path.exists(os.path.join(out, "metrics.jsonl")) and len(losses(out)) >= 6)
    p.send_signal(signal.SIGKILL)
    p.wait()
    expect(seen, "killed the run after step 6")
    r = train(cfg, "checkpoint.resume=true")
    expect(r.returncode == 0 and "resuming from" in r.stdout and "step-00000004" in r.stdout,
           f"resumed from the step-4 checkpoint ({r.stderr.strip()[-200:]})")
    got = losses(out)
    expect(got == ref, "kill -9 + resume: the same 12 losses, bit for bit")

    # kill -9 during the second save (step 8): step 4 stays the latest, and the resumed run matches.
    cfg, out = config("killed_in_save")
    p = subprocess.Popen([BIN, "train", cfg, "checkpoint.pause_before_commit_ms=3000", "--threads", "1"],
                         env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp8 = os.path.join(out, "checkpoints", ".step-00000008.tmp")
    in_save = wait_for(lambda: os.path.exists(os.path.join(tmp8, "trainer_state.json")), timeout=300)
    p.send_signal(signal.SIGKILL)
    p.wait()
    committed = checkpoints(out)
    expect(in_save and committed == ["step-00000004"], f"killed inside the step-8 save; committed: {committed}")
    r = train(cfg, "checkpoint.resume=true")
    expect(r.returncode == 0 and "step-00000004" in r.stdout, "resumed from the intact step-4 checkpoint")
    expect(losses(out) == ref, "kill -9 inside a save + resume: the same 12 losses")

    # SIGTERM (preemption, scancel): the run saves where it stands and exits 143; resuming gives the same losses.
    cfg, out = config("sigterm")
    p = subprocess.Popen([BIN, "train", cfg, "checkpoint.every_steps=0", "--threads", "1"],
                         env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    seen = wait_for(lambda: os.path.exists(os.path.join(out, "metrics.jsonl")) and len(losses(out)) >= 2)
    p.send_signal(signal.SIGTERM)
    so, se = p.communicate(timeout=300)
    done = max(losses(out)) if seen else 0
    committed = checkpoints(out)
    expect(seen and p.returncode == 143 and "stopped as asked" in so and done < 12 and
           committed == [f"step-{done:08d}"], f"SIGTERM after step {done}: exit {p.returncode}, saved {committed} "
           f"({so.strip()[-160:]} {se.strip()[-160:]})")
    r = train(cfg, "checkpoint.every_steps=0", "checkpoint.resume=true")
    expect(r.returncode == 0 and losses(out) == ref, "SIGTERM + resume: the same 12 losses, bit for bit")

    # SIGTERM while the run evaluates (an evaluation can take longer than SLURM's warning): the evaluation stops
    # at once, is logged as stopped (no partial results kept), and the run saves and exits 143.
    cfg, out = config("sigterm_in_eval")
    sample = os.path.join(SRC, "data", "sample", "mt_bench")
    with open(cfg, "a") as f:
        f.write(f"""eval:
  template: vicuna_v1.1
  batch_size: 4
  every_steps: 2
  mt_bench: {{questions: {sample}/question.jsonl, judge_prompts: {sample}/judge_prompts.jsonl,
             reference: {sample}/reference_answer/sample-reference.jsonl, judge: self, max_new_tokens: 400,
             judge_max_tokens: 400}}
""")
    p = subprocess.Popen([BIN, "train", cfg, "checkpoint.every_steps=0", "--threads", "1"],
                         env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    seen = wait_for(lambda: os.path.exists(os.path.join(out, "metrics.jsonl")) and 2 in losses(out))
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    so, se = p.communicate(timeout=300)
    took = time.time() - t0
    evals = eval_events(out)
    committed = checkpoints(out)
    expect(seen and p.returncode == 143 and [(r["step"], r.get("stopped")) for r in evals] == [(2, True)] and
           committed == ["step-00000002"] and not os.path.exists(os.path.join(out, "eval", "step-2")) and took < 20,
           f"SIGTERM during the step-2 evaluation: exit {p.returncode} {took:.1f} s after, evals {evals}, saved "
           f"{committed} ({so.strip()[-200:]} {se.strip()[-160:]})")

    # Two ranks, both told to stop (as SLURM signals every task) while rank 0 evaluates and rank 1 waits for it
    # in the closing collective: the evaluation stops at once, both save step 2 and exit 143.
    cfg2, out = config("sigterm_in_eval_two_ranks")
    with open(cfg) as src, open(cfg2, "w") as dst:  # the recipe above with its eval section, in a new folder
        dst.write(src.read().replace("sigterm_in_eval", "sigterm_in_eval_two_ranks"))
    port = free_port()
    procs = [subprocess.Popen([BIN, "train", cfg2, "parallel.strategy=ddp", "parallel.timeout_s=120",
                               "checkpoint.every_steps=0", "--threads", "1"], env=env_for(rank, 2, port),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(2)]
    seen = wait_for(lambda: os.path.exists(os.path.join(out, "metrics.jsonl")) and 2 in losses(out))
    t0 = time.time()
    for p in procs:
        p.send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=300) for p in procs]
    took = time.time() - t0
    evals = eval_events(out)
    committed = checkpoints(out)
    expect(seen and [p.returncode for p in procs] == [143, 143] and
           [(r["step"], r.get("stopped")) for r in evals] == [(2, True)] and committed == ["step-00000002"] and
           took < 30,
           f"SIGTERM to both ranks during the step-2 evaluation: exits {[p.returncode for p in procs]} {took:.1f} s "
           f"after, evals {evals}, saved {committed} ({' | '.join(o[1].strip()[-160:] for o in outs)})")

    # A second Ctrl-C does not wait for the save (held open 5 s here; two signals sent back to back could merge
    # into one before the process runs, so the second waits until the save has begun).
    cfg, out = config("two_ctrl_c")
    p = subprocess.Popen([BIN, "train", cfg, "checkpoint.every_steps=0", "checkpoint.pause_before_commit_ms=5000",
                          "--threads", "1"], env=dict(os.environ, OMP_NUM_THREADS="1"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = wait_for(lambda: os.path.exists(os.path.join(out, "metrics.jsonl")) and len(losses(out)) >= 1)
    p.send_signal(signal.SIGINT)
    ckdir = os.path.join(out, "checkpoints")
    saving = wait_for(lambda: os.path.isdir(ckdir) and any(d.endswith(".tmp") for d in os.listdir(ckdir)), timeout=60)
    p.send_signal(signal.SIGINT)
    p.wait(timeout=120)
    committed = checkpoints(out)
    expect(seen and saving and p.returncode == -signal.SIGINT and not committed,
           f"two Ctrl-C: killed by the second during the save (exit {p.returncode}, committed {committed})")

    # Two ranks, SLURM's USR1 warning on one of them only: both stop before the same step (rank 1 exits 138 =
    # 128 + SIGUSR1, rank 0 143), and resuming on two ranks finishes the run.
    cfg, out = config("usr1_two_ranks")
    port = free_port()
    common = ["parallel.strategy=ddp", "parallel.timeout_s=60", "checkpoint.every_steps=0", "--threads", "1"]
    procs = [subprocess.Popen([BIN, "train", cfg, *common], env=env_for(rank, 2, port), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in range(2)]
    seen = wait_for(lambda: os.path.exists(os.path.join(out, "metrics.jsonl")) and len(losses(out)) >= 2)
    procs[1].send_signal(signal.SIGUSR1)
    outs = [p.communicate(timeout=300) for p in procs]
    done = max(losses(out)) if seen else 0
    committed = checkpoints(out)
    expect(seen and [p.returncode for p in procs] == [143, 138] and committed == [f"step-{done:08d}"] and done < 12,
           f"USR1 to rank 1 after step {done}: exits {[p.returncode for p in procs]}, saved {committed} "
           f"({' | '.join(o[1].strip()[-160:] for o in outs)})")
    port = free_port()
    procs = [subprocess.Popen([BIN, "train", cfg, *common, "checkpoint.resume=true"], env=env_for(rank, 2, port),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    got = losses(out)
    dl = max(abs(got[s] - ref[s]) / max(1.0, abs(ref[s])) for s in ref) if sorted(got) == sorted(ref) else 1
    expect(all(p.returncode == 0 for p in procs) and dl <= 1e-6,
           f"two ranks resumed after USR1: 12 losses, max relative diff to one rank {dl:.1e}")

    # The loss falls on the embedded sample.
    cfg, out = config("falls")
    r = train(cfg, "run.max_steps=60", "checkpoint.every_steps=0")
    got = losses(out)
    first, last = got.get(1, 0), got.get(60, 1e9)
    expect(r.returncode == 0 and last < 0.5 * first, f"loss falls: step 1 {first:.3f} -> step 60 {last:.3f}")
    expect(os.path.exists(os.path.join(out, "loss.svg")), "loss curve written")
    model = os.path.join(out, "checkpoints", "step-00000060", "model")
    g = subprocess.run([BIN, "generate", "--model", model, "--prompt", "Hello", "--max-new-tokens", "8"],
                       capture_output=True, text=True)
    expect(g.returncode == 0, "chatmill generate loads the trained checkpoint")

    # Clear errors.
    bad = os.path.join(OUT, "bad.yaml")
    with open(bad, "w") as f:
        f.write("model: {preset: debug, tokenizer: x}\ndata: {store: x.h5, micro_batch_size: two}\nrun: {epoch: 3}\n")
    r = train(bad)
    expect(r.returncode == 2 and "bad.yaml:2: data.micro_batch_size must be an integer" in r.stderr
           and "unknown key 'run.epoch'" in r.stderr, "bad config: every problem with file and line")
    cfg, out = config("missing")
    r = train(cfg, "data.store=/nonexistent/train.h5")
    expect(r.returncode == 2 and "does not exist" in r.stderr and "data tokenize" in r.stderr, "missing store")
    llama = os.path.join(SHARED, "tokenizer", "llama2-tokenizer.model")
    if os.path.exists(llama):
        r = train(cfg, f"model.tokenizer={llama}")
        expect(r.returncode == 2 and "was made with a tokenizer of sha256" in r.stderr, "tokenizer mismatch refused")
    cfg, out = config("rank_dies")
    port = free_port()
    procs = [subprocess.Popen([BIN, "train", cfg, "parallel.strategy=ddp", "parallel.timeout_s=15", "run.max_steps=100000",
                               "checkpoint.every_steps=0", "--threads", "1"], env=env_for(rank, 2, port),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(2)]
    started = wait_for(lambda: os.path.exists(os.path.join(out, "metrics.jsonl")) and len(losses(out)) >= 2)
    # SIGPIPE ignored: a write to the dead peer's socket then fails with a clear error instead of silently
    # ending rank 0 (a race: seen once).
    with open(f"/proc/{procs[0].pid}/status") as f:
        ignored = int(next(line for line in f if line.startswith("SigIgn:")).split()[1], 16)
    expect(ignored >> (signal.SIGPIPE - 1) & 1, "a training rank ignores SIGPIPE")
    procs[1].send_signal(signal.SIGKILL)
    t = time.time()
    try:
        _, err = procs[0].communicate(timeout=120)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        err = "timed out: rank 0 hung"
    elapsed = time.time() - t
    expect(started and procs[0].returncode not in (0, None) and "failed on rank 0 of 2" in err,
           f"a dead rank: rank 0 stops with a clear error after {elapsed:.1f} s ({err.strip()[-200:]})")
    # A rank that hangs: the other gives up after parallel.timeout_s with the same clear error.
    cfg, out = config("rank_hangs")
    port = free_port()
    procs = [subprocess.Popen([BIN, "train", cfg, "parallel.strategy=ddp", "parallel.timeout_s=8", "run.max_steps=100000",
                               "checkpoint.every_steps=0", "--threads", "1"], env=env_for(rank, 2, port),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(2)]
    started = wait_for(lambda: os.path.exists(os.path.join(out, "metrics.jsonl")) and len(losses(out)) >= 2)
    procs[1].send_signal(signal.SIGSTOP)
    t = time.time()
    try:
        _, err = procs[0].communicate(timeout=120)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        err = "timed out: rank 0 hung"
    elapsed = time.time() - t
    procs[1].kill()
    procs[1].wait()
    expect(started and procs[0].returncode not in (0, None) and "failed on rank 0 of 2" in err and elapsed < 60,
           f"a hung rank: rank 0 stops after {elapsed:.1f} s (timeout 8 s) ({err.strip()[-160:]})")
    if failures:
        sys.exit(f"{len(failures)} failure(s)")


if __name__ == "__main__":
    main()
