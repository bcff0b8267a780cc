#!/usr/bin/env bash
# make bench: criterion micro-benchmarks, the Lambda bootstraps' sizes, and the
# end-to-end load of cfwh dev against Creative Force's reference receiver; writes
# BENCHMARKS.md and bench/load.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m== %s\033[0m\n' "$*"; }

missing=()
for tool in wrk puma perf valgrind; do command -v "$tool" >/dev/null || missing+=("$tool"); done
ruby -e 'require "sinatra/base"' 2>/dev/null || missing+=(ruby-sinatra)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (Debian packages wrk, ruby-sinatra, puma, linux-perf, valgrind)"
  command -v apt-get >/dev/null || { echo "make bench: install wrk, ruby-sinatra, puma, linux-perf and valgrind" >&2; exit 1; }
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get install -y -qq wrk ruby-sinatra puma linux-perf valgrind >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq wrk ruby-sinatra puma linux-perf valgrind >/dev/null; }
fi

say "criterion micro-benchmarks"
cargo bench -p cf-webhooks --features testkit --bench ack -- --warm-up-time 1 --measurement-time 3 --noplot

say "Lambda bootstraps"
make --no-print-directory build

say "cold start: ingest's init against a lambda_http hello world (same profile, host target)"
cargo build --release -p cf-webhooks-ingest -p cfwh-bench-hello -p cfwh
TARGET=${CARGO_TARGET_DIR:-target}
python3 bench/cold_start.py "$TARGET/release/hello" "$TARGET/release/ingest"

cargo build --release -p cfwh-bench-floor

say "end-to-end load: cfwh dev, the reference receiver and the bare floor, alternating"
python3 bench/load.py

say "the price list: each feature of cfwh dev against its absence"
python3 bench/price.py

say "memory per remembered event: 0.5, 1 and 2 million events"
python3 bench/memory.py

say "forwarding: cfwh dev with and without an HTTP destination"
python3 bench/forward.py

say "per-entity order: cfwh dev without the guard, with it, and with FIFO queues"
python3 bench/ordering.py

say "replay's memory: 100,000 archived events, over ten days and on one"
python3 bench/replay_memory.py

say "cfwh drift over a million archived events, beside cat of the same files"
python3 bench/drift_scan.py

say "cost per event deployed: the AWS requests counted against moto"
bash scripts/tools.sh >/dev/null
MOTO_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$MOTO_PORT" >target/bench/moto.log 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $MOTO_PORT), 1)" 2>/dev/null && break; sleep 0.2; done
CFWH_TEST_MOTO="http://127.0.0.1:$MOTO_PORT" AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_ACCESS_KEY_ID=test \
  AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
  cargo test -q -p cfwh --all-features --test it -- cost::what_each_event_costs_deployed_counted_per_request
kill $MOTO_PID 2>/dev/null || true

say "where the time goes: perf record on a build that keeps its symbols"
if command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1; then
  make --no-print-directory profile
else
  echo "make bench: perf is missing or not allowed (kernel.perf_event_paranoid): no profile this run" >&2
fi

python3 bench/report.py
