#!/usr/bin/env python3
"""Load test of an OpenAI-compatible server (chatmill serve, or any other): requests/s, generated tokens/s,
time to first token and latency (p50/p99) at 1, 8 and 32 concurrent clients. Every request is a streamed
/v1/completions call (so the first token's arrival is seen) with a fixed prompt length and max_tokens.

    python3 bench/load_test.py --model DIR [--tokenizer F] [--bin build] [--context 512] [--max-batch 32]  # starts chatmill serve
    python3 bench/load_test.py --url http://127.0.0.1:8000/v1 --name MODEL                   # a running server

Writes bench/results/serve_load_<device>.json and prints a markdown table."""
import argparse
import concurrent.futures
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def one(url, name, prompt, max_tokens):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = {"model": name, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    c.request("POST", u.path.rstrip("/") + "/completions", body=json.dumps(body),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200, r.read()
    first, tokens, buf = None, 0, b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            data = event[len(b"data: "):]
            if data == b"[DONE]":
                continue
            j = json.loads(data)
            if first is None and j["choices"] and j["choices"][0]["text"]:
                first = time.perf_counter() - t0
            if j.get("usage"):
                tokens = j["usage"]["completion_tokens"]
    c.close()
    total = time.perf_counter() - t0
    return {"ttft": first if first is not None else total, "latency": total, "tokens": tokens}


def level(url, name, prompt, max_tokens, clients, requests):
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        res = list(pool.map(lambda _: one(url, name, prompt, max_tokens), range(requests)))
    wall = time.perf_counter() - t0
    return {"clients": clients, "requests": requests, "seconds": wall, "requests_per_s": requests / wall,
            "tokens_per_s": sum(r["tokens"] for r in res) / wall,
            "ttft_p50_s": pct([r["ttft"] for r in res], 0.5), "ttft_p99_s": pct([r["ttft"] for r in res], 0.99),
            "latency_p50_s": pct([r["latency"] for r in res], 0.5),
            "latency_p99_s": pct([r["latency"] for r in res], 0.99),
            "mean_tokens": statistics.mean(r["tokens"] for r in res)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="model folder: start chatmill serve on it")
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--tokenizer", help="tokenizer.model when the folder has none")
    ap.add_argument("--url")
    ap.add_argument("--name", default="bench")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--prompt-words", type=int, default=48)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--requests-per-client", type=int, default=4)
    ap.add_argument("--out")
    a = ap.parse_args()
    proc = None
    url = a.url
    if not url:
        # Port 0: the server binds a free port and names it in its first line.
        proc = subprocess.Popen([os.path.join(a.bin, "chatmill"), "serve", "--model", a.model, "--port", "0",
                                 "--name", a.name, "--context", str(a.context), "--max-batch", str(a.max_batch),
                                 "--threads", str(a.threads), "--dtype", a.dtype, "--device", a.device,
                                 *(["--tokenizer", a.tokenizer] if a.tokenizer else [])],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        first = proc.stdout.readline()
        m = re.search(r"http://[^:]+:(\d+)/v1", first)
        if not m:
            sys.exit(f"chatmill serve did not start: {first!r}")
        port = int(m.group(1))
        url = f"http://127.0.0.1:{port}/v1"
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
    prompt = " ".join(f"word{i % 17}" for i in range(a.prompt_words))
    try:
        one(url, a.name, prompt, 4)  # warm-up
        rows = [level(url, a.name, prompt, a.max_tokens, c, c * a.requests_per_client) for c in (1, 8, 32)]
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=120)
    out = a.out or os.path.join(HERE, "results", f"serve_load_{a.device}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"url": url, "model": a.model or a.name, "device": a.device, "dtype": a.dtype, "threads": a.threads,
                   "context": a.context, "max_batch": a.max_batch, "prompt_words": a.prompt_words,
                   "max_tokens": a.max_tokens, "levels": rows}, f, indent=2)
    print("| clients | requests | requests/s | generated tok/s | TTFT p50 s | TTFT p99 s | latency p50 s | latency p99 s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clients']} | {r['requests']} | {r['requests_per_s']:.2f} | {r['tokens_per_s']:.0f} | "
              f"{r['ttft_p50_s']:.3f} | {r['ttft_p99_s']:.3f} | {r['latency_p50_s']:.3f} | {r['latency_p99_s']:.3f} |")


if __name__ == "__main__":
    main()
