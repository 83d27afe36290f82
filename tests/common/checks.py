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


def pinned_version(package):
    """The version requirements.txt pins for `package`: the oracle version the tests are written against."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "requirements.txt")
    with open(path, encoding="utf-8") as f:
        for line in f:
            name, _, version = line.strip().partition("==")
            if name.lower() == package.lower():
                return version
    return None


def hf_tokenizer_oracle(hf, sp):
    """Whether transformers' tokenizer `hf`, converted from the Llama-2 tokenizer.model that SentencePiece `sp`
    reads, can serve as an oracle: it encodes as SentencePiece does on a few probes. The pinned transformers does;
    transformers 5.17 (the GPU machine's image) drops SentencePiece's dummy prefix ("A chat" -> 29909, not 319;
    " " -> 29871, not 259). Returns (usable, why): an unpinned version that disagrees is not used, with the
    reason printed by the caller; the pinned one is always used, so a real difference still fails the tests."""
    import tokenizers
    import transformers
    probes = [" ", "A chat", "  two  spaces", "Hello world"]
    bad = [p for p in probes if hf(p, add_special_tokens=False)["input_ids"] != sp.encode(p)]
    have = {m.__name__: m.__version__ for m in (transformers, tokenizers)}
    pins = {name: pinned_version(name) for name in have}
    if not bad or have == pins:
        return True, ""
    return False, (f"transformers {have['transformers']} with tokenizers {have['tokenizers']} (requirements.txt "
                   f"pins {pins['transformers']} and {pins['tokenizers']}) converts the Llama-2 tokenizer unlike "
                   f"SentencePiece on {bad!r}: not used as an oracle here")
