#!/usr/bin/env bash
# Installs cargo-deny into .tools (or $CFWH_TOOLS) when missing or at another version:
# built from its source on crates.io with its own lock file (--locked), about two
# minutes on two cores, once. Prints the directory of the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.20.2
TOOLS=${CFWH_TOOLS:-$PWD/.tools}
if ! "$TOOLS/bin/cargo-deny" --version 2>/dev/null | grep -qx "cargo-deny $VERSION"; then
  printf '== building cargo-deny %s from crates.io into %s (once, about two minutes)\n' "$VERSION" "$TOOLS" >&2
  cargo install --quiet --locked --version "$VERSION" --root "$TOOLS" cargo-deny >&2
fi
echo "$TOOLS/bin"
