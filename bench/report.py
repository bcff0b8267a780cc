#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the results of `make bench`: criterion's estimates
(target/criterion), the load run (target/bench/load.json, bench/load.svg) and the sizes
of the Lambda bootstraps (target/lambda)."""

import glob
import gzip
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def criterion():
    results = {}
    for path in glob.glob(os.path.join(TARGET, "criterion", "**", "new", "benchmark.json"), recursive=True):
        with open(path) as f:
            bench = json.load(f)
        with open(os.path.join(os.path.dirname(path), "estimates.json")) as f:
            estimates = json.load(f)
        results[bench["full_id"]] = estimates["median"]["point_estimate"]
    return results


def fmt_ns(ns):
    if ns >= 1_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    if ns >= 1_000:
        return f"{ns / 1_000:.2f} µs"
    return f"{ns:.0f} ns"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; {rustc}"


def run_result(name):
    """target/bench/<name>.json of this run, or None when that part did not run."""
    path = os.path.join(TARGET, "bench", f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def main():
    c = criterion()
    lines = ["# Benchmarks", "",
             "Written by `make bench` (`bench/run.sh`): criterion micro-benchmarks, an end-to-end load of",
             "`cfwh dev` and of Creative Force's reference receiver in the same run, memory, start-up",
             "and bootstrap sizes. Every number below comes from the last run; rerun `make bench` to",
             "reproduce them on your machine.", "",
             f"Machine: {machine()}.", ""]

    load = run_result("load")
    if load is not None:
        cf, ref, s = load["cfwh"], load["reference"], load["settings"]
        lines += ["## Headline", "",
                  f"- `cfwh dev` answers **{cf['requests_per_s']:,.0f} deliveries/s** with p50 **{cf['p50_us'] / 1000:.2f} ms** "
                  f"and p99 **{cf['p99_us'] / 1000:.2f} ms**, **{load['ratio']:.1f}×** the throughput of the reference "
                  f"receiver ({ref['requests_per_s']:,.0f}/s) on the same machine in the same run;",
                  f"- {cf['non_2xx']} non-2xx answers; {cf['processed']:,} `processed` lines for {cf['unique_sent']:,} unique accepted "
                  f"events ({cf['processed_twice']} processed twice), every re-sent one a `duplicate`;"]
        ack = c.get("ack/1KiB/whole ack path (decide)")
        floor = c.get("ack/1KiB/floor: hmac + serde_json")
        if ack and floor:
            lines.append(f"- the ack path costs **{fmt_ns(ack)}** for a 1 KiB event, **{ack / floor:.2f}×** its floor "
                         f"(HMAC-SHA256 plus one `serde_json` parse, {fmt_ns(floor)}).")
        lines += ["", "![throughput and latency of both receivers](bench/load.svg)", "",
                  "## End-to-end load", "",
                  f"`wrk -t{s['threads']} -c{s['connections']} -d{s['duration']}` on loopback, fed a pool of {s['pool']:,} unique",
                  "events, each signed (`bench/wrk_pool.lua`); wrk and the receiver share the machine's cores.",
                  "`cfwh dev` runs in release with its default settings (in-memory queues, all seven",
                  "consumers, info logs on stderr); the reference receiver is the Sinatra example of",
                  "Creative Force's help page as printed (`bench/reference/`: verify, parse, print, answer",
                  "200) under puma with 2 workers × 4 threads.", "",
                  "| | cfwh dev | reference (Sinatra on puma) |", "|---|---|---|",
                  f"| requests/s | {cf['requests_per_s']:,.0f} | {ref['requests_per_s']:,.0f} |",
                  f"| latency p50 | {cf['p50_us'] / 1000:.2f} ms | {ref['p50_us'] / 1000:.2f} ms |",
                  f"| latency p90 | {cf['p90_us'] / 1000:.2f} ms | {ref['p90_us'] / 1000:.2f} ms |",
                  f"| latency p99 | {cf['p99_us'] / 1000:.2f} ms | {ref['p99_us'] / 1000:.2f} ms |",
                  f"| latency p99.9 | {cf['p999_us'] / 1000:.2f} ms | {ref['p999_us'] / 1000:.2f} ms |",
                  f"| requests | {cf['requests']:,} | {ref['requests']:,} |",
                  f"| non-2xx answers | {cf['non_2xx']} | {ref['non_2xx']} |",
                  f"| socket errors | {cf['socket_errors']} | {ref['socket_errors']} |",
                  f"| peak RSS | {cf['peak_rss_mib']:.1f} MiB | {ref['peak_rss_mib']:.1f} MiB (all processes) |",
                  f"| start to first answer | {cf['startup_ms']:.1f} ms | {ref['startup_ms']:.0f} ms |",
                  "",
                  f"Throughput ratio: **{load['ratio']:.1f}×**. Exactly once: {cf['processed']:,} `processed` for "
                  f"{cf['unique_sent']:,} unique events sent and accepted, {cf['processed_twice']} payload processed twice, "
                  f"{cf['duplicates']:,} `duplicate` lines for the re-sent ones (wrk cycles through the pool), "
                  f"{cf['other_outcomes']} other outcomes; `cfwh dev` drained and exited with {cf['exit_code']}.", ""]

    if c:
        lines += ["## Micro-benchmarks (criterion)", "",
                  "`cargo bench -p cf-webhooks --features testkit --bench ack` (`shared/benches/ack.rs`),",
                  "medians. The floor is what any receiver must do: HMAC-SHA256 of the bytes and one",
                  "`serde_json` parse of them to a `Value`.", "",
                  "| | 1 KiB event | 64 KiB body |", "|---|---|---|"]
        for name in ["floor: hmac-sha256", "floor: serde_json to Value", "floor: hmac + serde_json", "signature verify",
                     "whole ack path (decide)"]:
            a, b = c.get(f"ack/1KiB/{name}"), c.get(f"ack/64KiB/{name}")
            if a and b:
                lines.append(f"| {name} | {fmt_ns(a)} | {fmt_ns(b)} |")
        a, fa = c.get("ack/1KiB/whole ack path (decide)"), c.get("ack/1KiB/floor: hmac + serde_json")
        b, fb = c.get("ack/64KiB/whole ack path (decide)"), c.get("ack/64KiB/floor: hmac + serde_json")
        if a and fa and b and fb:
            lines.append(f"| **ack path ÷ floor** | **{a / fa:.2f}×** | **{b / fb:.2f}×** |")
        lines += ["", "The ack path parses only the fields it routes on (borrowed, no copy of the body) instead",
                  "of building a `Value`, which is why it can beat the floor; it checks UTF-8 once and hands",
                  "the received `Bytes` on to the queue without copying them.", "",
                  "Decoding per group (the reference's sample bodies):", "",
                  "| group | envelope (ingest) | typed event (consumer) | floor: `Value` |", "|---|---|---|---|"]
        groups = [key.split("/")[-1] for key in c if key.startswith("decode/envelope/")]
        for group in groups:
            e, t, v = c.get(f"decode/envelope/{group}"), c.get(f"decode/typed/{group}"), c.get(f"decode/floor: serde_json to Value/{group}")
            if e and t and v:
                lines.append(f"| {group} | {fmt_ns(e)} | {fmt_ns(t)} | {fmt_ns(v)} |")
        r, f = c.get("consumer/runner, batch of 10 unique records, no-op handler"), c.get("consumer/floor: typed decode of 10 records")
        if r and f:
            lines += ["", "Consumer runner, a batch of 10 unique task records as ingest queues them, each claimed, checked against",
                      "its facet's version, handled by a no-op handler and completed with the version, in-memory idempotency:",
                      f"{fmt_ns(r)} per batch ({fmt_ns(r / 10)} per record), against {fmt_ns(f)} for decoding the ten",
                      f"events alone: the runner's own overhead is {fmt_ns((r - f) / 10)} per record.", ""]
        timing = [(name, c.get(f"verify-timing/{name}")) for name in [
            "matches the first secret", "matches the second secret", "wrong in the first byte", "wrong in the last byte"]]
        if all(t for _, t in timing):
            lines += ["", "Signature verification with two secrets, 1 KiB body: an early exit over the secrets would",
                      "show as a faster match on the first one ([RELIABILITY.md, Security checks](RELIABILITY.md#security-checks)).", "",
                      "| signature | verify |", "|---|---|"]
            lines += [f"| {name} | {fmt_ns(t)} |" for name, t in timing]
            lines.append("")

    rp = run_result("replay")
    if rp is not None:
        def median_of(binary, days, field):
            values = sorted(r[field] for r in rp["rounds"] if r["binary"] == binary and r["days"] == days)
            return values[len(values) // 2] if values else None
        binaries = [b for b in ("now", "before") if median_of(b, 10, "rss_kib") is not None]
        lines += ["## Replay's memory", "",
                  f"`bench/replay_memory.py`: {rp['events']:,} archived task events, signed, in a folder with the",
                  "archive's layout, replayed as a dry run (each object listed, read and verified; nothing sent),",
                  "spread over ten days and all on one day; medians of three alternating rounds. `cfwh replay`",
                  "reads day by day, so its memory follows the largest day, not the span"
                  + (" (`before`: the binary that listed the whole span first)." if "before" in binaries else "."), "",
                  "| binary | layout | peak RSS | time |", "|---|---|---|---|"]
        for binary in binaries:
            for days in (10, 1):
                rss, seconds = median_of(binary, days, "rss_kib"), median_of(binary, days, "seconds")
                label = "10 days × 10,000" if days == 10 else "1 day × 100,000"
                lines.append(f"| {binary} | {label} | {rss / 1024:.1f} MiB | {seconds:.2f} s |")
        lines.append("")

    fw = run_result("forward")
    if fw is not None:
        p, w, fs = fw["plain"], fw["forwarding"], fw["settings"]
        lines += ["## Forwarding to an HTTP endpoint", "",
                  "`bench/forward.py`: the same pool of signed events sent by wrk for "
                  f"{fs['duration']} ({fs['connections']} connections) to `cfwh dev`, once with no destination",
                  "and once with `--forward-url` to a local receiver, in one run. The receiver is a second",
                  "`cfwh dev` whose webhook secret is the forward secret: every forward is verified as a",
                  "Creative Force delivery is, and processed once. All three processes and wrk share the",
                  "machine's cores. End to end: events processed (and forwarded) per second, from the first",
                  "delivery to the last record done.", "",
                  "| | no destination | forwarding |", "|---|---|---|",
                  f"| answers/s (ack path) | {p['requests_per_s']:,.0f} | {w['requests_per_s']:,.0f} |",
                  f"| latency p50 / p99 | {p['p50_us'] / 1000:.2f} / {p['p99_us'] / 1000:.2f} ms | "
                  f"{w['p50_us'] / 1000:.2f} / {w['p99_us'] / 1000:.2f} ms |",
                  f"| events processed | {p['processed']:,} | {w['processed']:,} |",
                  f"| processed per second, end to end | {p['end_to_end_per_s']:,.0f} | {w['end_to_end_per_s']:,.0f} |",
                  f"| forwarded (`\"http\":\"delivered\"`) | — | {w['forwarded']:,} |",
                  f"| verified and processed by the receiver | — | {fw['receiver_processed']:,} "
                  f"({fw['receiver_processed_twice']} twice) |", ""]

    order = run_result("ordering")
    if order is not None:
        a, g, f, st = order["all"], order["latest"], order["latest-fifo"], order["settings"]
        per_million = 2.00  # docs/operations.md, Cost per million events: +3 write units, +1 read unit
        lines += ["## Per-entity order: the guard and FIFO queues", "",
                  "`bench/ordering.py`: the same pool of signed events about "
                  f"{st['entities']:,} entities, versions rising with the pool's",
                  "order (so nearly every event is applied and the guard does all its work: the facet's version",
                  f"read, and written with the completion), sent by wrk for {st['duration']} ({st['connections']} "
                  "connections) to three `cfwh dev`",
                  "pipelines in one run: without the guard (`--ordering all`), with it (`latest`, the default),",
                  "and with it over FIFO queues (`--fifo`, as deployed by default). Idempotency and versions are",
                  "in memory here; end to end: records done (applied or `stale`) per second, from the first",
                  "delivery to the last record done.", "",
                  "| | `--ordering all` | `latest` | `latest --fifo` |", "|---|---|---|---|",
                  f"| answers/s (ack path) | {a['requests_per_s']:,.0f} | {g['requests_per_s']:,.0f} | "
                  f"{f['requests_per_s']:,.0f} |",
                  f"| latency p50 / p99 | {a['p50_us'] / 1000:.2f} / {a['p99_us'] / 1000:.2f} ms | "
                  f"{g['p50_us'] / 1000:.2f} / {g['p99_us'] / 1000:.2f} ms | "
                  f"{f['p50_us'] / 1000:.2f} / {f['p99_us'] / 1000:.2f} ms |",
                  f"| applied | {a['processed']:,} | {g['processed']:,} | {f['processed']:,} |",
                  f"| `stale` (overtaken in the queues by a newer event of their entity) | {a['stale']:,} | "
                  f"{g['stale']:,} | {f['stale']:,} |",
                  f"| records done per second, end to end | {a['end_to_end_per_s']:,.0f} | "
                  f"{g['end_to_end_per_s']:,.0f} | {f['end_to_end_per_s']:,.0f} |",
                  f"| applied twice | {a['processed_twice']} | {g['processed_twice']} | {f['processed_twice']} |", "",
                  "Deployed, the guard's cost is DynamoDB's, not CPU's: per guarded event one more read",
                  "(the facet's version) and the completion written in a transaction of two items instead of",
                  f"one `PutItem`: +3 write units and +1 read unit, **+${per_million:.2f} per million events** on",
                  "demand ([Cost per million events](docs/operations.md#cost-per-million-events)), and about one more round trip (~10 ms) of",
                  "consumer time per record, which the consumer's batch runs concurrently. FIFO queues cost",
                  "$0.10 more per million SQS requests than standard ones: +$0.12 per million events.", ""]

    init = run_result("init")
    if init is not None:
        h, i = init["hello"], init["ingest"]
        lines += ["## Cold start", "",
                  "The ingest bootstrap's init (process start to its first request for work from the Lambda",
                  "Runtime API) against a `lambda_http` hello world (`bench/hello`) built with the same",
                  f"profile, both started {init['rounds']} times alternately under a stand-in Runtime API",
                  "(`bench/cold_start.py`), on this machine's x86_64 (the deployed arm64 bootstraps cannot",
                  "run here). Ingest is configured as the template configures it, but for the secret,",
                  "which it reads from the environment instead of Secrets Manager.", "",
                  "| | median | min | max |", "|---|---|---|---|",
                  f"| hello world | {h['median_ms']:.2f} ms | {h['min_ms']:.2f} ms | {h['max_ms']:.2f} ms |",
                  f"| ingest | {i['median_ms']:.2f} ms | {i['min_ms']:.2f} ms | {i['max_ms']:.2f} ms |",
                  f"| **ingest ÷ hello** | **{init['ratio']:.2f}×** | | |", ""]

    sizes = []
    for path in sorted(glob.glob(os.path.join(TARGET, "lambda", "*", "bootstrap"))):
        function = os.path.basename(os.path.dirname(path))
        with open(path, "rb") as f:
            data = f.read()
        sizes.append((function, len(data), len(gzip.compress(data, 9))))
    lines += ["## Lambda bootstraps", ""]
    if sizes:
        lines += ["`make build` (`cargo lambda build --release --arm64`, one build of the two bootstraps:",
                  "`ingest`, and `consume`, which every consumer function deploys); zipped with `gzip -9`,",
                  "close to what Lambda stores and downloads at a cold start.", "",
                  "| function | bootstrap | zipped |", "|---|---|---|"]
        for function, size, zipped in sizes:
            lines.append(f"| {function} | {size / 1048576:.2f} MiB | {zipped / 1048576:.2f} MiB |")
        lines += ["", "Most of each binary is the AWS SDK (SQS and Secrets Manager for ingest; SQS, DynamoDB,",
                  "EventBridge, S3 and Secrets Manager for the consumers, which carry the destinations) and",
                  "its HTTP and TLS stack (hyper, h2, rustls on ring). The release profile builds them for",
                  "size and the ack path for speed (`Cargo.toml`)."]
    else:
        lines.append("Not built in this run: `make build`, then `make bench`.")
    lines.append("")
    history = os.path.join(ROOT, "bench", "history.md")
    if os.path.exists(history):
        with open(history) as f:
            lines += [f.read().rstrip(), ""]
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(lines))
    print("bench: wrote BENCHMARKS.md")


if __name__ == "__main__":
    sys.exit(main())
