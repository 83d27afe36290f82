#!/usr/bin/env python3
"""Checks that the persistent decode kernel reads nothing another of its stages writes through the read-only
path: the non-coherent loads (SASS `LDG...CONSTANT`, what `__ldg` and `const __restrict__` may compile to) that
no grid barrier orders. The CPU emulator cannot see this class of bug, so prebuild_gpu.sh runs this on the
compiled object (built with -lineinfo).

Each non-coherent load in a kernel whose name matches --kernel is traced to the project source line it came from
(nvdisasm -g's line table; lines of CUDA's own headers are skipped to the project line they were inlined for),
and that line's text must match one of ALLOWED: what no stage of the kernel writes. Loads from static device
tables (an address computed from a c[0x4] constant: the math library's sin/cos reduction table, which carries
no line of its own) are not the kernel's data, and pass.

    python3 scripts/check_sass_coherence.py build-cuda/CMakeFiles/chatmill_cuda_kernels.dir/src/model/cuda/persistent_kernels.cu.o

Exit 0: clean; 1: a disallowed load (each printed with its kernel, file, line and text); 2: bad input or no tools.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

# Where non-coherent loads are safe in the persistent kernel: reads of weights and constants no stage writes. Each
# entry: a file name, a regex for the reading line, and which other line the line table may name instead: the
# head of the loop around it ("loop", where nvcc puts a load it hoists out of the unrolled body) or the next
# statement ("next", where it puts the rotary frequency's load).
ALLOWED = [
    ("rms_norm_row.cuh", re.compile(r"__ldg\(weight\b"), "loop"),  # the RMSNorm weight
    ("skinny_kernels.cuh", re.compile(r"\binv_freq\["), "next"),   # rotary frequencies
]
LOOP_HEAD = re.compile(r"^\s*for \(")

FUNCTION = re.compile(r"^\s*\.text\.(\S+):")
INSTRUCTION = re.compile(r"/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s+([^;]*);")
ADDRESS = re.compile(r"\[(R\d+)(?:\.64)?(?:\+[^\]]*)?\]\s*$")  # a load's address register: [R4.64+0x10]
REGISTER = re.compile(r"\b(U?R)(\d+)\b")
LOCATION = re.compile(r'//## File "([^"]+)", line (\d+)')
NONCOHERENT = re.compile(r"\bLDG\.[A-Z0-9_.]*CONSTANT\b")


def find_tool(name):
    """cuobjdump / nvdisasm: on PATH, in the CUDA toolkit, or in the triton wheel torch brings."""
    found = shutil.which(name) or (os.path.exists(f"/usr/local/cuda/bin/{name}") and f"/usr/local/cuda/bin/{name}")
    if found:
        return found
    try:
        import triton  # noqa: F401  (torch's dependency ships both tools)
        path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)
        if os.path.exists(path):
            return path
    except ImportError:
        pass
    return None


def _registers(operand, wide):
    """The registers an operand names (a .64 one: the pair)."""
    regs = []
    for kind, n in REGISTER.findall(operand):
        regs.append(f"{kind}{n}")
        if wide:
            regs.append(f"{kind}{int(n) + 1}")
    return regs


def noncoherent_loads(sass_text, kernel_pattern, source_root):
    """[(function, file, line, instruction)] for each non-coherent load in the matching functions, attributed to
    the last project source line (a file under source_root) before it; loads whose address derives from a c[0x4]
    constant (a static device table) are left out. Raises ValueError on SASS without line information (the
    object was built without -lineinfo)."""
    out, function, project_loc, saw_location, table = [], None, None, False, set()
    for raw in sass_text.splitlines():
        m = FUNCTION.match(raw)
        if m:
            function, project_loc, table = m.group(1), None, set()
            continue
        m = LOCATION.search(raw)
        if m:
            saw_location = True
            path = os.path.normpath(m.group(1))
            if path.startswith(source_root):
                project_loc = (path, int(m.group(2)))
            continue
        m = INSTRUCTION.search(raw)
        if not m or not function:
            continue
        opcode, operands = m.group(1), [o.strip() for o in m.group(2).split(",")]
        if NONCOHERENT.search(opcode):
            address = ADDRESS.search(operands[-1])
            if re.search(kernel_pattern, function) and not (address and address.group(1) in table):
                out.append((function, project_loc[0] if project_loc else None,
                            project_loc[1] if project_loc else None, raw.strip()))
        # Which registers hold an address derived from a static table: a crude forward taint, enough for the
        # address arithmetic the compiler emits right before such a load.
        if not operands or opcode.startswith(("ST", "BRA", "BAR", "EXIT", "RET", "CALL")):
            continue
        wide = ".64" in opcode
        dests = [r for r in _registers(operands[0], wide) if not r.startswith("P")]
        tainted = any("c[0x4]" in o for o in operands[1:]) or any(
            r in table for o in operands[1:] for r in _registers(o, False))
        for r in dests:
            (table.add if tainted else table.discard)(r)
    if not saw_location:
        raise ValueError("the SASS has no line information: build the object with -lineinfo")
    return out


def allowed_lines(path, lines):
    """The line numbers (1-based) of `path` where ALLOWED lets a non-coherent load be."""
    ok = set()
    for name, pattern, other in ALLOWED:
        if os.path.basename(path) != name:
            continue
        for i, text in enumerate(lines, start=1):
            if not pattern.search(text):
                continue
            ok.add(i)
            if other == "next":
                ok.add(i + 1)
            elif other == "loop":
                head = next((j for j in range(i - 1, 0, -1) if LOOP_HEAD.search(lines[j - 1])), None)
                if head:
                    ok.add(head)
    return ok


def violations(loads):
    """The loads whose source line is not an ALLOWED one, as messages."""
    bad, sources = [], {}
    for function, path, line, instr in loads:
        if path is None:
            bad.append(f"{function}: {instr}: no project source line precedes it")
            continue
        if path not in sources:
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read().splitlines()
                sources[path] = (text, allowed_lines(path, text))
            except OSError as e:
                sources[path] = None
                bad.append(f"{function}: {path}:{line}: cannot read the source ({e})")
        if sources[path] is None:
            continue
        text, ok = sources[path]
        if line not in ok:
            src = text[line - 1].strip() if 0 < line <= len(text) else "(no such line)"
            bad.append(f"{function}: {path}:{line}: non-coherent load ({instr.split(';')[0].split('*/')[-1].strip()}) "
                       f"of: {src}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("objects", nargs="+", help="object files built by nvcc with -lineinfo")
    ap.add_argument("--kernel", default="persistent_step_kernel", help="regex of the kernels to check")
    ap.add_argument("--source-root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    a = ap.parse_args()
    cuobjdump, nvdisasm = find_tool("cuobjdump"), find_tool("nvdisasm")
    if not cuobjdump or not nvdisasm:
        print("check_sass_coherence: cuobjdump and nvdisasm not found (CUDA toolkit's bin, or the triton wheel: "
              "pip install triton)", file=sys.stderr)
        return 2
    root = os.path.normpath(os.path.abspath(a.source_root))
    bad, checked = [], 0
    for obj in a.objects:
        if not os.path.exists(obj):
            print(f"check_sass_coherence: {obj}: no such object file", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([cuobjdump, "-xelf", "all", os.path.abspath(obj)], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)
            cubins = glob.glob(os.path.join(tmp, "*.cubin"))
            if not cubins:
                print(f"check_sass_coherence: {obj}: holds no device code", file=sys.stderr)
                return 2
            for cubin in cubins:
                sass = subprocess.run([nvdisasm, "-g", "-c", cubin], check=True, capture_output=True, text=True).stdout
                try:
                    loads = noncoherent_loads(sass, a.kernel, root)
                except ValueError as e:
                    print(f"check_sass_coherence: {obj}: {e}", file=sys.stderr)
                    return 2
                checked += len(loads)
                bad += violations(loads)
    for b in bad:
        print(b)
    print(f"check_sass_coherence: {checked} non-coherent loads in kernels matching /{a.kernel}/, "
          f"{len(bad)} not allowed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
