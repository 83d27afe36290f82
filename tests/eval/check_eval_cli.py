#!/usr/bin/env python3
"""Evaluation as users run it, in real processes:
- a training run with an `eval:` section evaluates the weights in memory every N steps and at the end; its MMLU
  predictions equal `chatmill eval mmlu` on the checkpoint it saved at the same step;
- `chatmill eval CONFIG` sweeps the run's checkpoints (a glob) and writes report.json/.md/.html whose numbers are
  each checkpoint's results;
- moderation, jailbreak and Arena-Hard from the CLI against a real OpenAI-compatible endpoint on loopback (a
  small server with a fixed policy), the metrics recomputed here;
- clear errors: a glob that matches nothing, an unknown config key (file:line), answers made by other weights.
"""
import glob
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import BIN, expect, failures, jsonl  # noqa: E402

SRC = os.environ["CHATMILL_SOURCE_DIR"]
OUT = os.path.join(os.environ["CHATMILL_TESTDATA"], "scratch", "check_eval_cli")
TOKENIZER = os.path.join(SRC, "data", "sample", "tokenizer.model")
SAMPLE = os.path.join(SRC, "data", "sample")
PROMPT = os.path.join(SRC, "data", "prompts", "moderation_v1.txt")
CATS = ["hate", "self-harm", "sexual", "violence", "harassment"]


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))


def policy(message):
    """The endpoint's moderation policy, from the message's wording."""
    if "religion" in message or "nationality" in message:
        return "Attacks a group. [[1. hate]]"
    if "threat" in message:
        return "A threat. [[4. violence]] [[5. harassment]]"
    if "sexual" in message:
        return "Sexual content. [[3. sexual]]"
    if "self-injury" in message:
        return "I'm sorry, but I can't help with that."
    return "Harmless. [[6. None of the above]]"


class Endpoint(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests = []


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        user = body["messages"][-1]["content"]
        if body["model"] == "moderator":
            text = policy(user[user.find("Message:"):])
        elif body["model"] == "rater":  # scores by the prompt's length: long prompts are "hard"
            text = f"[[{min(10, 1 + len(user) // 60)}]]"
        else:
            text = "unknown model"
        data = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    store = os.path.join(OUT, "train.h5")
    tok_cfg = write(os.path.join(OUT, "tokenize.yaml"),
                    f"inputs: [{os.path.join(SAMPLE, 'lmsys_chat_sample.jsonl')}]\ntokenizer: {TOKENIZER}\n"
                    f"max_length: 128\npacking: packed\noutput: {store}\n")
    r = run("data", "tokenize", tok_cfg)
    assert r.returncode == 0, r.stderr

    # 1. Training with an eval: section, every 3 steps and at the end (step 6).
    run_dir = os.path.join(OUT, "run")
    train_cfg = write(os.path.join(OUT, "train.yaml"), f"""model: {{preset: debug, tokenizer: {TOKENIZER}, device: cpu}}
data: {{store: {store}, micro_batch_size: 4, global_batch_size: 8}}
optimizer: {{lr: 3.0e-3}}
run: {{epochs: 100, max_steps: 6, seed: 0, output_dir: {run_dir}}}
checkpoint: {{every_steps: 3, keep_last: 5}}
logging: {{every_steps: 1, progress: false}}
eval:
  every_steps: 3
  mmlu: {{data: {os.path.join(SAMPLE, 'mmlu')}, shots: 2}}
  moderation: {{set: {os.path.join(SAMPLE, 'moderation_eval.jsonl')}, prompt: {PROMPT}, max_tokens: 16}}
""")
    r = run("train", train_cfg, "--threads", "2")
    expect(r.returncode == 0, f"train with eval: exit 0 ({r.stderr.strip()[-300:]})")
    events = [e for e in jsonl(os.path.join(run_dir, "metrics.jsonl")) if e.get("event") == "eval"]
    expect([e["step"] for e in events] == [3, 6], f"eval events at steps 3 and 6 ({[e['step'] for e in events]})")
    expect(all("mmlu" in e["results"] and "moderation" in e["results"] for e in events), "both benchmarks logged")
    expect(events[-1]["results"]["mmlu"]["provenance"]["model_sha256"] == "in-memory", "evaluated in memory")
    mem = jsonl(os.path.join(run_dir, "eval", "step-6", "mmlu", "results_predictions.jsonl"))
    ckpt = os.path.join(run_dir, "checkpoints", "step-00000006", "model")
    r = run("eval", "mmlu", "--model", ckpt, "--data", os.path.join(SAMPLE, "mmlu"), "--shots", "2", "--out",
            os.path.join(OUT, "offline_mmlu", "results.json"))
    off = jsonl(os.path.join(OUT, "offline_mmlu", "results_predictions.jsonl"))
    expect(r.returncode == 0 and [p["prediction"] for p in mem] == [p["prediction"] for p in off] and len(off) == 24,
           "in-memory MMLU predictions == offline MMLU on the saved step-6 checkpoint")
    worst = max(abs(a - b) for p, q in zip(mem, off) for a, b in zip(p["scores"], q["scores"]))
    expect(worst < 1e-4, f"answer-letter scores agree within 1e-4 ({worst:.2e})")

    # 2. A sweep over the run's checkpoints.
    sweep_out = os.path.join(OUT, "sweep")
    sweep_cfg = write(os.path.join(OUT, "sweep.yaml"), f"""checkpoints: [{run_dir}/checkpoints/step-*/model]
output_dir: {sweep_out}
eval:
  mmlu: {{data: {os.path.join(SAMPLE, 'mmlu')}, shots: 2}}
  mt_bench:
    questions: {os.path.join(SAMPLE, 'mt_bench', 'question.jsonl')}
    judge_prompts: {os.path.join(SAMPLE, 'mt_bench', 'judge_prompts.jsonl')}
    reference: {os.path.join(SAMPLE, 'mt_bench', 'reference_answer', 'sample-reference.jsonl')}
    judge: self
    max_new_tokens: 8
    judge_max_tokens: 8
""")
    r = run("eval", sweep_cfg, "threads=2")
    expect(r.returncode == 0, f"sweep: exit 0 ({r.stderr.strip()[-300:]})")
    report = json.load(open(os.path.join(sweep_out, "report.json")))
    labels = [row["checkpoint"] for row in report["rows"]]
    expect(labels == ["step-00000003", "step-00000006"], f"one row per checkpoint ({labels})")
    md = open(os.path.join(sweep_out, "report.md")).read()
    for row in report["rows"]:
        res = json.load(open(os.path.join(sweep_out, row["checkpoint"], "mmlu", "results.json")))
        expect(f"| {row['checkpoint']} | {res['micro_accuracy']:.3f} |" in md,
               f"report.md shows {row['checkpoint']}'s MMLU {res['micro_accuracy']:.3f}")
        expect(res["provenance"]["model_sha256"] not in ("", "in-memory"), "sweep results carry the checkpoint hash")
    sweep6 = jsonl(os.path.join(sweep_out, "step-00000006", "mmlu", "results_predictions.jsonl"))
    expect([p["prediction"] for p in sweep6] == [p["prediction"] for p in mem], "sweep step-6 == in-memory step-6")
    html = open(os.path.join(sweep_out, "report.html")).read()
    expect("<table>" in html and "MMLU accuracy by category" in html and "MT-Bench" in html, "report.html has the table and bars")

    # Answers made by other weights are refused, not reused.
    stamp = os.path.join(sweep_out, "step-00000006", "mt_bench", "answers", "step-00000006.model_sha256")
    write(stamp, "0123\n")
    r = run("eval", sweep_cfg)
    expect(r.returncode == 2 and "were made by weights" in r.stderr, f"stale answers refused ({r.stderr.strip()[-200:]})")

    # 3. Errors.
    r = run("eval", write(os.path.join(OUT, "bad1.yaml"), f"checkpoints: [{OUT}/nothing-*/model]\neval: {{mmlu: {{data: x}}}}\n"))
    expect(r.returncode == 2 and "matches no folder" in r.stderr, "a glob matching nothing is an error")
    r = run("eval", write(os.path.join(OUT, "bad2.yaml"), "checkpoints: [x]\neval:\n  mmlu: {data: x}\n  mt_bnch: {}\n"))
    expect(r.returncode == 2 and "bad2.yaml:4" in r.stderr and "mt_bnch" in r.stderr, f"unknown key named with its line ({r.stderr.strip()[:200]})")
    r = run("eval")
    expect(r.returncode == 2 and "needs a config file" in r.stderr, "bare `chatmill eval` says what to give")

    # 4. Moderation, jailbreak and Arena-Hard against an endpoint.
    srv = Endpoint()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    mod_out = os.path.join(OUT, "moderation")
    r = run("eval", "moderation", "--model", f"url={url},model=moderator", "--set", os.path.join(SAMPLE, "moderation_eval.jsonl"),
            "--prompt", PROMPT, "--shots-file", os.path.join(SAMPLE, "moderation_shots.jsonl"), "--shots", "0", "1",
            "--out", mod_out)
    expect(r.returncode == 0, f"moderation via endpoint: exit 0 ({r.stderr.strip()[-300:]})")
    items = jsonl(os.path.join(SAMPLE, "moderation_eval.jsonl"))
    tp = fp = fn = 0
    for it in items:
        gold = {c.split("/")[0] for c in it["categories"]}
        pred = {CATS[int(n) - 1] for n in re.findall(r"\[\[(\d)\.", policy("Message:\n" + it["text"])) if int(n) <= 5}
        tp, fp, fn = tp + len(gold & pred), fp + len(pred - gold), fn + len(gold - pred)
    f1 = 2 * tp / (2 * tp + fp + fn)
    for shots in ("0-shot", "1-shot"):
        res = json.load(open(os.path.join(mod_out, shots, "results.json")))
        expect(abs(res["micro_f1"] - f1) < 1e-12 and res["refusals"] == 1,
               f"moderation {shots}: micro-F1 {res['micro_f1']:.4f} == recomputed {f1:.4f}, 1 refusal")
    one_shot = [b for b in srv.requests if b["model"] == "moderator" and len(b["messages"]) == 3]
    expect(len(one_shot) == len(items) and one_shot[0]["messages"][1]["role"] == "assistant"
           and one_shot[0]["messages"][1]["content"].endswith("[[1. hate]] [[4. violence]]"),
           "1-shot: the example is an earlier user/assistant turn")

    jb_out = os.path.join(OUT, "jailbreak")
    jb_set = write(os.path.join(OUT, "jb.jsonl"), "".join(open(os.path.join(SAMPLE, "lmsys_chat_sample.jsonl")).readlines()[:6]))
    r = run("eval", "jailbreak", "--model", os.path.join(run_dir, "checkpoints", "step-00000006", "model"), "--set", jb_set,
            "--moderation-prompt", PROMPT, "--moderator", f"url={url},model=moderator", "--max-tokens", "12", "--out", jb_out)
    expect(r.returncode == 0, f"jailbreak: exit 0 ({r.stderr.strip()[-300:]})")
    res = json.load(open(os.path.join(jb_out, "results.json")))
    attempts = jsonl(os.path.join(jb_out, "attempts.jsonl"))
    succ = sum(any("[[6." not in policy("Message:\n" + t["answer"]) and "[[" in policy("Message:\n" + t["answer"])
                   for t in a["turns"]) for a in attempts)
    expect(res["attempts"] == 6 and res["successes"] == succ, f"jailbreak successes {res['successes']} == recomputed {succ}")

    ar_out = os.path.join(OUT, "arena")
    prompts = os.path.join(OUT, "prompts.jsonl")
    with open(prompts, "w") as f:
        for i, n in enumerate([20, 700, 30, 650, 40, 600]):
            f.write(json.dumps({"prompt_id": f"p{i}", "prompt": ("word " * (n // 5)).strip()}) + "\n")
    rubric = os.path.join(SRC, "data", "prompts", "arena_hard_rating_v1.txt")
    r = run("eval", "arena-hard", "--prompts", prompts, "--rubric", rubric, "--rater", f"url={url},model=rater",
            "--rater", f"url={url},model=rater,name=rater-2", "--threshold", "9", "--out", ar_out)
    res = json.load(open(os.path.join(ar_out, "results.json")))
    expected = sum(1 + len(open(rubric).read().replace("{prompt}", ("word " * (n // 5)).strip())) // 60 >= 9
                   for n in [20, 700, 30, 650, 40, 600])
    expect(r.returncode == 0 and res["prompts"] == 6 and res["selected"] == expected,
           f"arena-hard: {res.get('selected')} prompts kept by both raters == {expected}")
    n = len(srv.requests)
    r = run("eval", "arena-hard", "--prompts", prompts, "--rubric", rubric, "--rater", f"url={url},model=rater",
            "--rater", f"url={url},model=rater,name=rater-2", "--out", ar_out)
    expect(r.returncode == 0 and len(srv.requests) == n, "arena-hard rerun: ratings from the cache")
    srv.shutdown()
    print("FAILED: " + "; ".join(failures) if failures else "all eval CLI checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
