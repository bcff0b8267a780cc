#!/usr/bin/env bash
# make fuzz: runs each libFuzzer target for FUZZ_SECONDS (default 60), seeded from
# events/, with a memory limit, and prints executions and findings per target.
# cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP=1 lets the stable toolchain use them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"ack_path decode signature_header"}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
mkdir -p target/fuzz
summary=target/fuzz/summary.txt
: > "$summary"
for target in $TARGETS; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  cp events/*.json events/reference/*.txt "$corpus"/ 2>/dev/null || true
  log=target/fuzz/$target.log
  printf '== fuzzing %s for %ss\n' "$target" "$SECONDS_EACH"
  status=0
  (cd fuzz && cargo fuzz run "$target" "../$corpus" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 \
      -malloc_limit_mb=512 -max_len=131072 -print_final_stats=1) >"$log" 2>&1 || status=$?
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  crashes=$(ls fuzz/artifacts/"$target" 2>/dev/null | wc -l)
  printf '%s: %s executions in %ss, exit %s, %s crash artifact(s)\n' "$target" "$runs" "$SECONDS_EACH" "$status" "$crashes" | tee -a "$summary"
  [ "$status" = 0 ] || { tail -30 "$log"; exit 1; }
done
cat "$summary"
