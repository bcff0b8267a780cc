#!/usr/bin/env bash
# The whole test suite, from a fresh clone: checks the toolchain, installs what the
# tests need, starts the servers they talk to, runs every crate's tests, stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m== %s\033[0m\n' "$*"; }
die() { printf 'make test: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is missing: install Rust (https://rustup.rs), then run make test again"

# A clean build of every crate and test writes about 5 GiB under target/: say so
# plainly before the compiler fails with "No space left on device" half-way through.
# On a fresh clone (CI) incremental compilation only costs disk: it is off there.
[ "${CI:-}" = true ] && export CARGO_INCREMENTAL=0
mkdir -p "${CARGO_TARGET_DIR:-target}"
FREE_GIB=$(df -Pk "${CARGO_TARGET_DIR:-target}" | awk 'NR==2 {print int($4 / 1048576)}')
if [ "$FREE_GIB" -lt 5 ]; then
  printf 'make test: warning: %s GiB free where the build writes (%s); a clean build needs about 5 GiB\n' \
    "$FREE_GIB" "$(cd "${CARGO_TARGET_DIR:-target}" && pwd)" >&2
fi

# Python tools in a venv of the project's own: moto_server (the AWS API the tests talk
# to), cfn-lint and SAM (template checks), cargo-lambda (the Lambda emulator run).
VENV_BIN=$(scripts/tools.sh)
VENV=$(dirname "$VENV_BIN")
export PATH="$VENV_BIN:$PATH"

# Chromium from Debian's packages, for the inspector's browser test.
if ! command -v chromium >/dev/null; then
  command -v apt-get >/dev/null || die "chromium is missing: install it (Debian: apt-get install chromium), then make test again"
  say "installing chromium (Debian's package) for the browser test"
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq chromium >/dev/null; } \
    || die "cannot install chromium"
fi

# rustfmt and clippy ship with the toolchain: a missing one is an error, not a skip.
for component in rustfmt clippy; do
  cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 \
    || die "cargo ${component/rustfmt/fmt} is missing: run \`rustup component add $component\`, then make test again"
done

say "template: up to date, cfn-lint, sam validate --lint, checkov (each skip justified in docs/security.md)"
AWS_REGION=us-east-1 scripts/validate.sh

# moto on a free port of 127.0.0.1, stopped when this script ends, whatever happens.
MOTO_PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p target
"$VENV/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$MOTO_PORT" >target/moto.log 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  "$VENV/bin/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$MOTO_PORT/moto-api/data.json', timeout=1)" \
    >/dev/null 2>&1 && break
  kill -0 "$MOTO_PID" 2>/dev/null || die "moto_server did not start: $(tail -5 target/moto.log)"
  sleep 0.2
done
say "moto_server on 127.0.0.1:$MOTO_PORT (pid $MOTO_PID)"
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export CFWH_TEST_MOTO="$AWS_ENDPOINT_URL"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

say "rustfmt"
cargo fmt --all --check

say "links of README.md and docs/ (relative files and #anchors)"
python3 scripts/links.py

say "clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

# cargo-deny, built once from crates.io (scripts/deny.sh); the policy is deny.toml.
say "dependency policy (cargo deny: bans, licences, sources)"
DENY_BIN=$(scripts/deny.sh)
export PATH="$DENY_BIN:$PATH"
cargo deny check bans licenses sources

say "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
else
  cargo test --workspace --all-features --no-fail-fast
fi
# The deterministic simulation of the consumer side: as many seeds as fit in 60 s, every
# fault on, the invariants checked after every step (a broken one prints its seed, shrunk,
# and the command that replays it).
say "simulation (60 s of seeds)"
# The binary the test build made (its integration tests need it): `cargo run -p` would
# build the library again with other features, SDKs included.
# From seed 0, so that a run here repeats the seeds of any other (`make simulate` starts
# from the clock, to explore).
"${CARGO_TARGET_DIR:-target}/debug/simulate" --seconds "${SIMULATE_SECONDS:-60}" --start 0
say "end to end under cargo lambda watch"
"$VENV/bin/python" scripts/e2e_lambda.py
# The stack itself, created, updated and deleted three ways in LocalStack, and the real
# bootstraps run against it (scripts/rehearse.py; docs/deploying.md, "Rehearsing a deploy offline").
if [ "${CFWH_REHEARSE:-1}" = 0 ]; then
  say "deploy rehearsal SKIPPED (CFWH_REHEARSE=0)"
else
  say "deploy rehearsal in LocalStack (make rehearse)"
  REHEARSE_START=$(date +%s)
  scripts/rehearse.sh
  say "deploy rehearsal took $(( $(date +%s) - REHEARSE_START )) s"
fi
say "the inspector page in headless Chromium"
"$VENV/bin/python" scripts/browser_test.py
say "all tests passed"
