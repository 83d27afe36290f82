# Sourced by the scripts: PY = the project's Python (its .venv if setup made one, else python3 on PATH).
if [ -x "$(dirname "${BASH_SOURCE[0]}")/../.venv/bin/python" ]; then
  PY="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python"
else
  PY="${PYTHON:-$(command -v python3)}"
fi
export PY
