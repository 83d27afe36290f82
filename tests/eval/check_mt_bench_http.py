#!/usr/bin/env python3
"""`chatmill eval mt-bench` end to end against a real OpenAI-compatible HTTP judge on loopback (a small
threaded server started here). FastChat's protocol is recomputed independently in Python: the judge prompts
are filled with str.format from the answer files (as FastChat's llm_judge does), scores parsed with its regexes,
and the aggregates recomputed from what the server answered. Cases: a good judge (API key checked), cache reuse
(a rerun sends no request), a flaky judge (HTTP 500 once, then fine: retries recover), a judge that returns
garbage, times out, returns HTTP 500 always, or is down (clear error, exit 2); a judge that fails half the
requests keeps the other half in the cache, and the next run asks only for the rest; pairwise in both orders.
"""
import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import BIN, expect, failures, jsonl  # noqa: E402

SRC = os.environ["CHATMILL_SOURCE_DIR"]
SAMPLE = os.path.join(SRC, "data", "sample", "mt_bench")
TOK = os.path.join(SRC, "data", "sample", "tokenizer.model")


def h(text):
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


class Judge(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = "good"
        self.lock = threading.Lock()
        self.requests = []   # (mode, body) of every request
        self.attempts = {}   # user prompt -> attempts (flaky mode)

    def reply_for(self, user):
        """The judge's deterministic answer to a prompt."""
        if "[Assistant A" in user:
            return "Both are fine. " + ("[[A]]", "[[B]]", "[[C]]")[h(user) % 3]
        if self.mode == "norating" and h(user) % 3 == 0:
            return "I cannot rate this answer."
        return f"The answer is adequate. Rating: [[{h(user) % 10 + 1}]]"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, code, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.requests.append((srv.mode, body))
            mode = srv.mode
        if self.path != "/v1/chat/completions":
            return self.send(404, json.dumps({"error": {"message": "not found"}}))
        if self.headers.get("Authorization") != "Bearer sekret-key":
            return self.send(401, json.dumps({"error": {"message": "bad key"}}))
        user = body["messages"][-1]["content"]
        if mode == "garbage":
            return self.send(200, "<html>upstream proxy error</html>", "text/html")
        if mode == "error500":
            return self.send(500, json.dumps({"error": {"message": "overloaded"}}))
        if mode == "slow":
            time.sleep(3)
        if mode == "flaky":
            with srv.lock:
                srv.attempts[user] = srv.attempts.get(user, 0) + 1
                first = srv.attempts[user] == 1
            if first:
                return self.send(500, json.dumps({"error": {"message": "try again"}}))
        if mode == "half" and h(user) % 2 == 0:
            return self.send(503, json.dumps({"error": {"message": "unavailable"}}))
        content = srv.reply_for(user)
        self.send(200, json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                                   "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                                "finish_reason": "stop"}]}))


def chatmill(*args, env_key=True):
    env = dict(os.environ)
    if env_key:
        env["JUDGE_KEY"] = "sekret-key"
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env)


def fastchat_prompts(questions, refs, prompts, answers, other=None):
    """Every judge prompt FastChat would send, in order: (user prompt, prompt name, question, turn)."""
    out = []
    for q in questions:
        ref_cat = q["category"] in ("math", "reasoning", "coding", "arena-hard-200")
        for turn in (1, 2):
            if other is None:
                name = ("single-math-v1" if ref_cat else "single-v1") + ("-multi-turn" if turn == 2 else "")
                a = answers[q["question_id"]]
                kw = dict(question=q["turns"][0], answer=a[0]) if turn == 1 else dict(
                    question_1=q["turns"][0], question_2=q["turns"][1], answer_1=a[0], answer_2=a[1])
                if ref_cat:
                    r = refs[q["question_id"]]
                    kw.update(ref_answer_1=r[0]) if turn == 1 else kw.update(ref_answer_1=r[0], ref_answer_2=r[1])
                out.append((prompts[name]["prompt_template"].format(**kw), name, q, turn))
            else:
                name = ("pair-math-v1" if ref_cat else "pair-v2") + ("-multi-turn" if turn == 2 else "")
                for x, y in ((answers, other), (other, answers)):
                    a, b = x[q["question_id"]], y[q["question_id"]]
                    kw = dict(question=q["turns"][0], answer_a=a[0], answer_b=b[0]) if turn == 1 else dict(
                        question_1=q["turns"][0], question_2=q["turns"][1], answer_a_1=a[0], answer_b_1=b[0],
                        answer_a_2=a[1], answer_b_2=b[1])
                    if ref_cat:
                        r = refs[q["question_id"]]
                        kw.update(ref_answer_1=r[0]) if turn == 1 else kw.update(ref_answer_1=r[0], ref_answer_2=r[1])
                    out.append((prompts[name]["prompt_template"].format(**kw), name, q, turn))
    return out


def fastchat_score(judgment):
    m = re.search(r"\[\[(\d+\.?\d*)\]\]", judgment) or re.search(r"\[(\d+\.?\d*)\]", judgment)
    return float(m.group(1)) if m else -1


def main():
    work = tempfile.mkdtemp(prefix="mt_http_")
    for name, seed in (("model-a", "1"), ("model-b", "2")):
        r = chatmill("init", "--preset", "debug", "--tokenizer", TOK, "--seed", seed, "--std", "0.2",
                     "--out", os.path.join(work, name))
        assert r.returncode == 0, r.stderr
    srv = Judge()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    questions = jsonl(os.path.join(SAMPLE, "question.jsonl"))
    refs = {a["question_id"]: a["choices"][0]["turns"]
            for a in jsonl(os.path.join(SAMPLE, "reference_answer", "sample-reference.jsonl"))}
    prompts = {p["name"]: p for p in jsonl(os.path.join(SAMPLE, "judge_prompts.jsonl"))}

    def mt(out, model="model-a", extra=(), judge_extra="retries=2"):
        return chatmill("eval", "mt-bench", "--model", os.path.join(work, model), "--questions",
                        os.path.join(SAMPLE, "question.jsonl"), "--judge-prompts",
                        os.path.join(SAMPLE, "judge_prompts.jsonl"), "--reference",
                        os.path.join(SAMPLE, "reference_answer", "sample-reference.jsonl"), "--out",
                        os.path.join(work, out), "--max-new-tokens", "24", "--threads", "2", "--judge",
                        f"url={url},model=judge-x,key_env=JUDGE_KEY,backoff=0.05,concurrency=4,{judge_extra}", *extra)

    # 1. A good judge: prompts as FastChat fills them, scores as FastChat parses and averages them.
    r = mt("good")
    expect(r.returncode == 0, f"good judge: exit 0 ({r.stderr.strip()[-300:]})")
    answers_file = os.path.join(work, "good", "answers", "model-a.jsonl")
    ans = {a["question_id"]: a["choices"][0]["turns"] for a in jsonl(answers_file)}
    line = jsonl(answers_file)[0]
    expect(set(line) == {"question_id", "answer_id", "model_id", "choices", "tstamp"} and line["model_id"] == "model-a"
           and len(ans) == 8 and all(len(t) == 2 for t in ans.values()), "answer file in FastChat's format, 8 x 2 turns")
    expected = fastchat_prompts(questions, refs, prompts, ans)
    sent = [b for _, b in srv.requests]
    expect(len(sent) == 16, f"16 judge requests ({len(sent)})")
    expect(sorted(b["messages"][-1]["content"] for b in sent) == sorted(p for p, *_ in expected),
           "every user prompt equals FastChat's str.format fill")
    by_user = {b["messages"][-1]["content"]: b for b in sent}
    expect(all(by_user[p]["messages"][0] == {"role": "system", "content": prompts[n]["system_prompt"]}
               and by_user[p]["temperature"] == 0 and by_user[p]["max_tokens"] == 2048 and by_user[p]["model"] == "judge-x"
               for p, n, *_ in expected), "system prompt, temperature 0, max_tokens 2048, model name")
    scores = [(fastchat_score(srv.reply_for(p)), q["category"], t) for p, _, q, t in expected]
    res = json.load(open(os.path.join(work, "good", "results.json")))
    mean = lambda v: sum(v) / len(v)
    expect(abs(res["score"] - mean([s for s, _, _ in scores])) < 1e-9, f"score {res['score']} = FastChat mean")
    expect(abs(res["turn_2"] - mean([s for s, _, t in scores if t == 2])) < 1e-9, "turn-2 mean")
    expect(all(abs(res["per_category"][c] - mean([s for s, cc, _ in scores if cc == c])) < 1e-9
               for c in {q["category"] for q in questions}), "per-category means")
    judged = jsonl(os.path.join(work, "good", "judgments.jsonl"))
    expect(len(judged) == 16 and all(j["judgment"] == srv.reply_for(j["user_prompt"]) and j["judge"] == f"judge-x@{url}"
                                     for j in judged), "judgments.jsonl keeps each judgment, judge and prompt")
    expect(res["provenance"]["model_sha256"] and len(res["provenance"]["files"]) == 3, "provenance recorded")

    # 2. Rerun: answers and judgments come from disk; the judge is not asked again.
    n = len(srv.requests)
    r = mt("good")
    expect(r.returncode == 0 and len(srv.requests) == n, "rerun sends no judge request")
    expect(json.load(open(os.path.join(work, "good", "results.json")))["score"] == res["score"], "rerun: same score")

    # 3. Unparseable ratings are dropped and counted.
    srv.mode = "norating"
    r = mt("norating")
    res = json.load(open(os.path.join(work, "norating", "results.json")))
    bad = sum(1 for p, *_ in expected if h(p) % 3 == 0)
    kept = [fastchat_score(srv.reply_for(p)) for p, *_ in expected if h(p) % 3 != 0]
    expect(r.returncode == 0 and res["invalid"] == bad and abs(res["score"] - mean(kept)) < 1e-9,
           f"{bad} unparseable judgments dropped, score over the other {len(kept)}")

    # 4. Flaky: HTTP 500 on every first attempt; retries recover every judgment.
    srv.mode = "flaky"
    n = len(srv.requests)
    r = mt("flaky")
    expect(r.returncode == 0 and len(srv.requests) - n == 32, f"flaky judge: retried once each ({len(srv.requests) - n})")

    # 5. Failures: clear errors, exit 2, and nothing that came is lost.
    for mode, judge_extra, words in (("garbage", "retries=2", "not an OpenAI chat completion"),
                                     ("error500", "retries=2", "HTTP 500"),
                               ("slow", "retries=2,timeout=0.5", "no response")):
        srv.mode = mode
        r = mt(mode, judge_extra=judge_extra)
        expect(r.returncode == 2 and words in r.stderr and "judgments failed" in r.stderr,
               f"{mode}: exit 2 and '{words}' ({r.stderr.strip()[-200:]})")
    r = chatmill("eval", "mt-bench", "--model", os.path.join(work, "model-a"), "--questions",
                 os.path.join(SAMPLE, "question.jsonl"), "--judge-prompts", os.path.join(SAMPLE, "judge_prompts.jsonl"),
                 "--reference", os.path.join(SAMPLE, "reference_answer", "sample-reference.jsonl"), "--out",
                 os.path.join(work, "good"), "--judge", "url=http://127.0.0.1:1/v1,model=j,retries=0")
    expect(r.returncode == 2 and "is the endpoint up" in r.stderr, "judge down: exit 2, says so")
    r2 = chatmill("eval", "mt-bench", "--model", os.path.join(work, "model-a"), "--questions",
                  os.path.join(SAMPLE, "question.jsonl"), "--judge-prompts", os.path.join(SAMPLE, "judge_prompts.jsonl"),
                  "--out", os.path.join(work, "nokey"), "--judge", f"url={url},model=j,key_env=JUDGE_KEY", env_key=False)
    expect(r2.returncode == 2 and "JUDGE_KEY is not set" in r2.stderr, "missing API key variable: clear error")

    srv.mode = "half"
    r = mt("half")
    cache = jsonl(os.path.join(work, "half", "judgments_cache.jsonl"))
    ok_half = sum(1 for p, *_ in expected if h(p) % 2 == 1)
    expect(r.returncode == 2 and len(cache) == ok_half and f"{16 - ok_half} of 16 judgments failed" in r.stderr,
           f"half the judge down: the {ok_half} that came are cached")
    srv.mode = "good"
    n = len(srv.requests)
    r = mt("half")
    res = json.load(open(os.path.join(work, "half", "results.json")))
    expect(r.returncode == 0 and len(srv.requests) - n == 16 - ok_half and res["newly_judged"] == 16 - ok_half,
           f"the next run asks only for the {16 - ok_half} missing judgments")

    # 6. Pairwise, both orders: model-a vs model-b's answers.
    r = mt("b", model="model-b")
    expect(r.returncode == 0, "model-b answered and judged")
    other_file = os.path.join(work, "b", "answers", "model-b.jsonl")
    other = {a["question_id"]: a["choices"][0]["turns"] for a in jsonl(other_file)}
    r = mt("good", extra=("--compare", other_file))
    expect(r.returncode == 0, f"pairwise: exit 0 ({r.stderr.strip()[-300:]})")
    res = json.load(open(os.path.join(work, "good", "results.json")))
    pairs = fastchat_prompts(questions, refs, prompts, ans, other)
    win = tie = loss = 0
    for i in range(0, len(pairs), 2):
        v1 = re.search(r"\[\[([ABC])\]\]", srv.reply_for(pairs[i][0])).group(1)
        v2 = re.search(r"\[\[([ABC])\]\]", srv.reply_for(pairs[i + 1][0])).group(1)
        w1 = {"A": 1, "B": -1, "C": 0}[v1]
        w2 = {"A": -1, "B": 1, "C": 0}[v2]
        if w1 != w2:
            tie += 1
        else:
            win, tie, loss = win + (w1 > 0), tie + (w1 == 0), loss + (w1 < 0)
    expect((res["win"], res["tie"], res["loss"]) == (win, tie, loss) and res["games"] == 16,
           f"pairwise win/tie/loss {res['win']}/{res['tie']}/{res['loss']} = {win}/{tie}/{loss}")
    srv.shutdown()
    print("FAILED: " + "; ".join(failures) if failures else "all MT-Bench HTTP checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
