#!/usr/bin/env bash
# Create .venv and install Vigil into it (editable). `./scripts/setup.sh dev` adds test tools.
# Re-running is cheap: nothing is reinstalled unless pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Vigil needs Python 3.11 or newer (found: $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  printf '\033[1m==> creating .venv\033[0m\n'
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip wheel
fi
stamp=".venv/.installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  printf '\033[1m==> installing vigil%s into .venv\033[0m\n' "${extras:+[$extras]}"
  .venv/bin/pip install -q -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
