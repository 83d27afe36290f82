#!/usr/bin/env python3
"""Checks scripts/check_sass_coherence.py's reading of nvdisasm output on hand-written SASS: an allowed load
passes; a load of anything else is reported with its file and line; a load whose address comes from a static
table (c[0x4]) is left out; kernels the pattern does not name are not checked; SASS without line information
and a load with no project line before it are errors, never a silent pass.

    python3 tests/scripts/test_check_sass_coherence.py     # exit 0 = pass, 1 = fail
"""
import importlib.util
import os
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
spec = importlib.util.spec_from_file_location("check", os.path.join(ROOT, "scripts", "check_sass_coherence.py"))
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)

failures = []


def expect(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


with tempfile.TemporaryDirectory() as src:
    norm = os.path.join(src, "rms_norm_row.cuh")
    with open(norm, "w") as f:
        f.write("// a norm\n  for (int64_t c = 0; c < n; ++c) {\n    h = __ldcg(residual + c);\n"
                "    g = __ldg(weight + c);\n  }\n")

    def sass(body, kernel="persistent_step_kernel_x"):
        return f"\t.text.{kernel}:\n" + body

    loc = lambda line: f'\t//## File "{norm}", line {line}\n'  # noqa: E731
    weight = loc(4) + "        /*0100*/                   LDG.E.128.CONSTANT R4, desc[UR6][R10.64] ;\n"
    hoisted = loc(2) + "        /*0110*/                   LDG.E.128.CONSTANT R4, desc[UR6][R10.64+0x10] ;\n"
    residual = loc(3) + "        /*0120*/                   LDG.E.128.CONSTANT R8, desc[UR6][R12.64] ;\n"
    coherent = loc(3) + "        /*0130*/                   LDG.E.128.STRONG.GPU R8, desc[UR6][R12.64] ;\n"
    table = (loc(3) + "        /*0140*/                   ULDC.64 UR12, c[0x4][0xe0] ;\n"
             "        /*0150*/                   IADD3 R4, P2, R0, UR12, RZ ;\n"
             "        /*0160*/                   IADD3.X R5, R2, UR13, RZ, P2, !PT ;\n"
             "        /*0170*/                   LDG.E.CONSTANT R2, desc[UR6][R4.64] ;\n")
    retainted = "        /*0180*/                   IMAD.MOV.U32 R4, RZ, RZ, R20 ;\n" \
                "        /*0190*/                   LDG.E.CONSTANT R2, desc[UR6][R4.64] ;\n"

    loads = check.noncoherent_loads(sass(weight + hoisted + coherent), "persistent_step_kernel", src)
    expect(len(loads) == 2 and not check.violations(loads), "the weight's loads, at its line and its loop's head, pass")

    loads = check.noncoherent_loads(sass(residual), "persistent_step_kernel", src)
    bad = check.violations(loads)
    expect(len(bad) == 1 and f"{norm}:3" in bad[0] and "__ldcg(residual" in bad[0],
           f"a residual read through the read-only path is reported with its file, line and text: {bad}")

    loads = check.noncoherent_loads(sass(table), "persistent_step_kernel", src)
    expect(loads == [], f"a load from a static table (c[0x4]) is left out: {loads}")
    loads = check.noncoherent_loads(sass(table + retainted), "persistent_step_kernel", src)
    expect(len(loads) == 1 and "0190" in loads[0][3], f"a register rewritten from other data is the kernel's again: {loads}")

    loads = check.noncoherent_loads(sass(residual, kernel="skinny_kernel_x"), "persistent_step_kernel", src)
    expect(loads == [], "kernels the pattern does not name are not checked")

    try:
        check.noncoherent_loads(sass("        /*0100*/                   LDG.E.128.CONSTANT R4, desc[UR6][R10.64] ;\n"),
                                "persistent_step_kernel", src)
        expect(False, "SASS without line information is an error")
    except ValueError as e:
        expect("-lineinfo" in str(e), f"the error says how to fix it: {e}")

    cuda_header = '\t//## File "/usr/local/cuda/include/cuda_bf16.hpp", line 9\n'
    loads = check.noncoherent_loads(sass(cuda_header + "        /*0100*/                   LDG.E.128.CONSTANT R4, "
                                         "desc[UR6][R10.64] ;\n"), "persistent_step_kernel", src)
    bad = check.violations(loads)
    expect(len(bad) == 1 and "no project source line" in bad[0], f"a load with no project line is reported: {bad}")

print("FAILED" if failures else "ok")
sys.exit(1 if failures else 0)
