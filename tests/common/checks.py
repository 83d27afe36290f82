"""What the Python checks under tests/ share: the binary under test (CHATMILL_BIN, set by CTest), a list of
failed expectations, and small helpers. A check script imports these, calls expect() as it goes, and exits
non-zero when `failures` is not empty."""
import json
import os
import socket
import subprocess

BIN = os.environ.get("CHATMILL_BIN", "")
failures = []


def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def run(*args, env=None):
    """Runs the chatmill binary with `args`; returns the CompletedProcess (text output captured)."""
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
