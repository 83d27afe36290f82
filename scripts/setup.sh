#!/usr/bin/env bash
# Installs everything chatmill needs on a fresh Debian 12 machine: Debian packages (compilers and C++
# libraries) and Python packages (the torch wheel that carries LibTorch, and the test oracles).
# Idempotent: it installs only what is missing, and a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git python3 python3-venv
  libyaml-cpp-dev libsentencepiece-dev libhdf5-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libcpp-httplib-dev libzstd-dev libbenchmark-dev libsimdjson-dev zlib1g-dev libgloo-dev
  libssl-dev
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Python: the interpreter on PATH when it lets pip install (pyenv, conda, a venv); otherwise a project
# venv in .venv (Debian's system Python refuses pip installs, PEP 668). scripts/python.sh picks the same one.
source scripts/python.sh
if ! "$PY" -m pip --version >/dev/null 2>&1 || "$PY" -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) and sys.prefix == sys.base_prefix else 1)'; then
  echo "setup: creating a Python virtual environment in .venv"
  python3 -m venv .venv
  PY="$PWD/.venv/bin/python"
fi
if ! "$PY" - <<'PYCHECK' 2>/dev/null; then
import importlib.metadata as m, pathlib, re, sys
for line in pathlib.Path("requirements.txt").read_text().splitlines():
    line = line.split("#")[0].strip()
    if line:
        name, version = re.split("==", line)
        if m.version(name) != version:
            sys.exit(1)
PYCHECK
  echo "setup: installing Python packages from requirements.txt"
  "$PY" -m pip install -q --disable-pip-version-check -r requirements.txt
fi
echo "setup: ready (python: $PY)"
