#!/usr/bin/env bash
# Installs the project's Python tools into .venv (or $CFWH_VENV) when missing or when
# scripts/requirements.lock (or $CFWH_LOCK: scripts/checkov.lock for .venv-checkov)
# changed: every package, its dependencies included, pinned
# to a version and to the SHA-256 of its files (pip --require-hashes), so a compromised
# or replaced upload is refused. The lock is written from scripts/requirements.txt by
# `pip-compile --generate-hashes --allow-unsafe --no-emit-find-links`
# (pip-tools). $CFWH_PYTHON names the interpreter of a new venv (default python3).
# Prints the venv's bin directory.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${CFWH_VENV:-$PWD/.venv}
LOCK=${CFWH_LOCK:-scripts/requirements.lock}
die() { printf 'tools: %s\n' "$*" >&2; exit 1; }
if ! cmp -s "$LOCK" "$VENV/.requirements" 2>/dev/null; then
  printf '== installing the Python tools of %s into %s\n' "$LOCK" "$VENV" >&2
  PYTHON=${CFWH_PYTHON:-python3}
  if [ "$PYTHON" = python3 ] && ! command -v python3 >/dev/null; then
    command -v apt-get >/dev/null || die "python3 is missing"
    apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" 2>/dev/null || {
      command -v apt-get >/dev/null || die "cannot create a Python venv: install python3-venv"
      apt-get install -y -qq python3-venv >/dev/null && "$PYTHON" -m venv "$VENV"
    } || die "cannot create a Python venv: install python3-venv"
  fi
  # From PyPI only, as the hashes were taken there (not a local wheel directory).
  # The lock is the whole closure, so nothing is resolved again (--no-deps); pip check
  # then confirms it is consistent.
  PIP_FIND_LINKS= "$VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps \
    -r "$LOCK" >&2
  "$VENV/bin/pip" check >&2 || die "the locked Python tools are inconsistent: regenerate $LOCK"
  cp "$LOCK" "$VENV/.requirements"
fi
echo "$VENV/bin"
