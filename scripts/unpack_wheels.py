#!/usr/bin/env python3
"""Makes carried wheels importable without pip or network: unpacks each wheel in WHEELS into TARGET (to put on
PYTHONPATH), skipping those whose top-level packages this Python already imports (its own numpy, say) and
those built for another Python. Usage: python3 scripts/unpack_wheels.py WHEELS TARGET"""
import importlib.util
import os
import sys
import sysconfig
import zipfile


def main():
    wheels, target = sys.argv[1], sys.argv[2]
    os.makedirs(target, exist_ok=True)
    tag = "cp%d%d" % sys.version_info[:2]
    for name in sorted(os.listdir(wheels)):
        if not name.endswith(".whl"):
            continue
        py_tag = name[:-4].split("-")[-3]
        if not any(t in ("py3", "py2.py3", tag) or t.startswith("cp3") and "abi3" in name for t in py_tag.split(".")):
            print(f"skip {name}: built for {py_tag}, this is {tag}")
            continue
        with zipfile.ZipFile(os.path.join(wheels, name)) as z:
            tops = {p.split("/")[0] for p in z.namelist() if not p.split("/")[0].endswith((".dist-info", ".data"))}
            mods = {t[:-3] if t.endswith(".py") else t for t in tops if not t.endswith((".so", ".pth"))}
            if mods and all(importlib.util.find_spec(m) is not None for m in mods if m.isidentifier()):
                print(f"skip {name}: already importable")
                continue
            z.extractall(target)
            print(f"unpacked {name}")
    print("platform", sysconfig.get_platform())


if __name__ == "__main__":
    main()
