#!/usr/bin/env bash
# Installs the project's Python tools into .venv (or $CFWH_VENV) when missing or when
# scripts/requirements.txt changed. Prints the venv's bin directory.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${CFWH_VENV:-$PWD/.venv}
die() { printf 'tools: %s\n' "$*" >&2; exit 1; }
if ! cmp -s scripts/requirements.txt "$VENV/.requirements" 2>/dev/null; then
  printf '== installing the Python tools into %s (moto, cfn-lint, aws-sam-cli, cargo-lambda)\n' "$VENV" >&2
  if ! command -v python3 >/dev/null; then
    command -v apt-get >/dev/null || die "python3 is missing"
    apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" 2>/dev/null || {
      command -v apt-get >/dev/null || die "cannot create a Python venv: install python3-venv"
      apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$VENV"
    } || die "cannot create a Python venv: install python3-venv"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt >&2
  cp scripts/requirements.txt "$VENV/.requirements"
fi
echo "$VENV/bin"
