#!/usr/bin/env bash
# make bench: criterion micro-benchmarks, the Lambda bootstraps' sizes, and the
# end-to-end load of cfwh dev against Creative Force's reference receiver; writes
# BENCHMARKS.md and bench/load.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m== %s\033[0m\n' "$*"; }

missing=()
for tool in wrk puma; do command -v "$tool" >/dev/null || missing+=("$tool"); done
ruby -e 'require "sinatra/base"' 2>/dev/null || missing+=(ruby-sinatra)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (Debian packages wrk, ruby-sinatra, puma)"
  command -v apt-get >/dev/null || { echo "make bench: install wrk, ruby-sinatra and puma" >&2; exit 1; }
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get install -y -qq wrk ruby-sinatra puma >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq wrk ruby-sinatra puma >/dev/null; }
fi

say "criterion micro-benchmarks"
cargo bench -p cf-webhooks --features testkit --bench ack -- --warm-up-time 1 --measurement-time 3 --noplot

say "Lambda bootstraps"
make --no-print-directory build

say "cold start: ingest's init against a lambda_http hello world (same profile, host target)"
cargo build --release -p cf-webhooks-ingest -p cfwh-bench-hello -p cfwh
TARGET=${CARGO_TARGET_DIR:-target}
python3 bench/cold_start.py "$TARGET/release/hello" "$TARGET/release/ingest"

say "end-to-end load"
python3 bench/load.py

say "forwarding: cfwh dev with and without an HTTP destination"
python3 bench/forward.py

say "per-entity order: cfwh dev without the guard, with it, and with FIFO queues"
python3 bench/ordering.py

say "replay's memory: 100,000 archived events, over ten days and on one"
python3 bench/replay_memory.py

python3 bench/report.py
