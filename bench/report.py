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
    if load is not None and "floor" in load:
        cf, ref, fl, s = load["cfwh"], load["reference"], load["floor"], load["settings"]
        ratio, floor_ratio = load["ratio"], load["floor_ratio"]
        pmu = any(r.get("instructions_per_request") for r in (cf, ref, fl))
        lines += ["## Headline", "",
                  f"Medians of {s['rounds']} rounds alternating the three receivers in one run; every request a new",
                  "signed event (a pool larger than any run); `cfwh dev` with its default flags and log level.", "",
                  f"- `cfwh dev` answers **{cf['requests_per_s']:,.0f} deliveries/s**: **{ratio:.1f}×** the reference "
                  f"receiver ({ref['requests_per_s']:,.0f}/s; target 10×) and **{floor_ratio:.2f}×** a bare axum server "
                  f"answering 200 ({fl['requests_per_s']:,.0f}/s; target 0.5×);",
                  f"- p99 **{cf['p99_us'] / 1000:.2f} ms** at that load (target 5 ms); p50 {cf['p50_us'] / 1000:.2f} ms;",
                  f"- **{cf['end_to_end_per_s']:,.0f} events processed per second** end to end, with "
                  f"**{cf['backlog_at_stop']:,.0f}** accepted events not yet processed when the load stopped "
                  f"(drained {cf['drain_s']:.2f} s later);",
                  f"- every accepted event processed once in every round ({cf['processed']:,.0f} `processed` lines for "
                  f"{cf['accepted']:,.0f} accepted, {cf['processed_twice']:.0f} twice);",
                  f"- CPU per request: {cf['cpu_us_per_request']:.1f} µs for `cfwh dev`, {fl['cpu_us_per_request']:.1f} µs "
                  f"for the floor, {ref['cpu_us_per_request']:.1f} µs for the reference (`perf stat` task-clock"
                  + ("; instructions in the table below)." if pmu else
                     "; this machine's virtual CPUs expose no hardware counters, so `perf stat` cannot count"
                     " instructions here: the harness records them where it can).")]
        ack = c.get("ack/1KiB/whole ack path (decide)")
        floor_c = c.get("ack/1KiB/floor: hmac + serde_json")
        if ack and floor_c:
            lines.append(f"- the ack path costs **{fmt_ns(ack)}** for a 1 KiB event, **{ack / floor_c:.2f}×** its floor "
                         f"(HMAC-SHA256 plus one `serde_json` parse, {fmt_ns(floor_c)}).")
        lines += ["", "![throughput and latency of the three receivers](bench/load.svg)", "",
                  "## End-to-end load", "",
                  f"`wrk -t{s['threads']} -c{s['connections']} -d{s['duration']}` on loopback, fed a pool of {s['pool']:,} unique",
                  "events, each signed (`bench/wrk_pool.lua`, `bench/rounds.py`); wrk and the receiver share the",
                  "machine's cores. `cfwh dev` runs in release with its default settings (in-memory queues,",
                  "all seven consumers, the inspector, the order guard, tracing, info logs on stderr, record",
                  "lines on stdout to a file); the reference receiver is the Sinatra example of Creative Force's",
                  "help page as printed (`bench/reference/`: verify, parse, print, answer 200) under puma with",
                  "2 workers × 4 threads; the floor is `bench/floor`, axum reading each body and answering 200,",
                  "built with the same profile.", "",
                  "| | cfwh dev | reference (Sinatra on puma) | floor (bare axum) |", "|---|---|---|---|",
                  f"| answers/s (median) | {cf['requests_per_s']:,.0f} | {ref['requests_per_s']:,.0f} | {fl['requests_per_s']:,.0f} |",
                  "| answers/s, each round | " + " · ".join(f"{v:,.0f}" for v in cf["rounds"]) + " | "
                  + " · ".join(f"{v:,.0f}" for v in ref["rounds"]) + " | " + " · ".join(f"{v:,.0f}" for v in fl["rounds"]) + " |",
                  f"| latency p50 | {cf['p50_us'] / 1000:.2f} ms | {ref['p50_us'] / 1000:.2f} ms | {fl['p50_us'] / 1000:.2f} ms |",
                  f"| latency p99 | {cf['p99_us'] / 1000:.2f} ms | {ref['p99_us'] / 1000:.2f} ms | {fl['p99_us'] / 1000:.2f} ms |",
                  f"| latency p99.9 | {cf['p999_us'] / 1000:.2f} ms | {ref['p999_us'] / 1000:.2f} ms | {fl['p999_us'] / 1000:.2f} ms |",
                  f"| CPU per request | {cf['cpu_us_per_request']:.1f} µs | {ref['cpu_us_per_request']:.1f} µs | "
                  f"{fl['cpu_us_per_request']:.1f} µs |"]
        if pmu:
            lines.append(f"| instructions per request | {cf['instructions_per_request']:,.0f} | "
                         f"{ref['instructions_per_request']:,.0f} | {fl['instructions_per_request']:,.0f} |")
        counted = load.get("counted")
        if counted:
            lines.append(f"| instructions per request, counted (user space; SHA-256 in software) | "
                         f"{counted['cfwh']:,.0f} | — | {counted['floor']:,.0f} |")
        lines += [f"| non-2xx answers | {cf['non_2xx']:.0f} | {ref['non_2xx']:.0f} | {fl['non_2xx']:.0f} |",
                  f"| socket errors | {cf['socket_errors']:.0f} | {ref['socket_errors']:.0f} | {fl['socket_errors']:.0f} |",
                  f"| RSS when the load stopped | {cf['rss_mib']:.1f} MiB | | |",
                  f"| processed per second, end to end | {cf['end_to_end_per_s']:,.0f} | | |",
                  f"| backlog when the load stopped | {cf['backlog_at_stop']:,.0f} | | |",
                  "", f"Ratios: **{ratio:.1f}×** the reference, **{floor_ratio:.2f}×** the floor.", ""]
        if "before" in load:
            b = load["before"]
            lines += [f"In the same rounds, `cfwh dev` as it was before ({load['before_name']}), default flags:", "",
                      "| | now | before |", "|---|---|---|",
                      f"| answers/s (median) | {cf['requests_per_s']:,.0f} | {b['requests_per_s']:,.0f} |",
                      "| answers/s, each round | " + " · ".join(f"{v:,.0f}" for v in cf["rounds"]) + " | "
                      + " · ".join(f"{v:,.0f}" for v in b["rounds"]) + " |",
                      f"| latency p99 | {cf['p99_us'] / 1000:.2f} ms | {b['p99_us'] / 1000:.2f} ms |",
                      f"| CPU per request | {cf['cpu_us_per_request']:.1f} µs | {b['cpu_us_per_request']:.1f} µs |",
                      f"| RSS when the load stopped | {cf['rss_mib']:.1f} MiB | {b['rss_mib']:.1f} MiB |",
                      f"| processed per second, end to end | {cf['end_to_end_per_s']:,.0f} | {b['end_to_end_per_s']:,.0f} |"]
            if counted and "before" in counted:
                lines.append(f"| instructions per request, counted | {counted['cfwh']:,.0f} | {counted['before']:,.0f} "
                             f"({counted['cfwh'] / counted['before'] - 1:+.1%}) |")
            lines.append("")

    price = run_result("price")
    if price is not None:
        lines += ["## Price list", "",
                  f"Each feature of `cfwh dev` against its absence, in the same run: {price['rounds']} rounds alternating",
                  f"the two, {price['duration']} of wrk each, new signed events (`bench/price.py`); medians. The cost",
                  "is the share of answers per second lost with the feature on, then the extra CPU per request,",
                  "then the share of the end-to-end rate (events processed per second) lost, then the extra",
                  "instructions per event, **counted** (`bench/instructions.py`: the process under valgrind's",
                  "cachegrind, sent 2,000 and then 12,000 new events; the difference per event). This VM has no",
                  "hardware counters and its answers per second move ±12% between identical rounds, so the",
                  "count is the gate: it repeats within 0.2%. It counts user-space instructions only (not the",
                  "kernel's), and SHA-256 in software (valgrind hides the CPU's SHA extensions): about 45,000",
                  "of each event's instructions are the signature's, a few hundred on the real CPU.",
                  "A feature on by default that costs more than 5% says why it is worth it below the table.", "",
                  "| feature | on by default | answers/s with | without | cost | CPU per request | end-to-end cost "
                  "| instructions per event, counted |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in price["features"]:
            w, wo = row["with"], row["without"]
            cpu = (f"{w['cpu_us_per_request']:.1f} vs {wo['cpu_us_per_request']:.1f} µs"
                   if wo.get("cpu_us_per_request") else "—")
            counted = row.get("instructions")
            counted = (f"{counted['with']:,.0f} vs {counted['without']:,.0f}: **{row['instruction_cost'] * 100:+.1f}%**"
                       if counted else "— (a page cannot be held open under valgrind)")
            lines.append(f"| {row['feature']} | {'yes' if row['default'] else 'no'} | {w['requests_per_s']:,.0f} | "
                         f"{wo['requests_per_s']:,.0f} | **{row['cost'] * 100:+.1f}%** | {cpu} | "
                         f"{row['end_to_end_cost'] * 100:+.1f}% | {counted} |")
        lines += ["", "A negative cost is a feature measured faster than its absence: the rounds' noise on two",
                  "cores shared with wrk, which the medians do not remove entirely; the counted column is the",
                  "one to hold a change to. The spare worker thread is the exception: it is there for speed,",
                  "so only its timed columns can show what it is for (valgrind runs one thread at a time, so",
                  "the count cannot see a worker waiting on a preempted one); its count shows it costs",
                  "nothing otherwise.", "",
                  "Why the features on by default are worth what they cost: the inspector costs nothing",
                  "counted while no page is open (what its answers/s row shows is the rounds' noise); with a",
                  "page open it copies and formats the rows that changed, at most 200, five times a second",
                  "(once a second under load), which is what a page is for, and only while one is open. The",
                  "order guard keeps an older event from being",
                  "applied after a newer one of the same entity and facet; tracing names each delivery's",
                  "X-Ray trace on its record lines, as deployed; the drift check compares each event with",
                  "what Creative Force documents, in the same pass as its decode, so a studio hears of a",
                  "changed payload the day it comes rather than when a handler breaks on it.", ""]

    mem = run_result("memory")
    if mem is not None:
        lines += ["## Memory per remembered event", "",
                  "`bench/memory.py`: `cfwh dev` fed 0.5, then 0.5, then 1 million new signed events (small task",
                  "events, info logs off), its RSS read once each step is processed and the queues are empty;",
                  "with the inspector on and off. What is past its memory is forgotten as the store grows",
                  "(`what_is_past_its_memory_is_swept_away_as_the_store_grows`); at `--max-remembered`",
                  "(4,000,000 by default) new deliveries are answered 503.", "",
                  "| | at start | 0.5 M | 1 M | 2 M | bytes per event, 1 M → 2 M |", "|---|---|---|---|---|---|"]
        for label, points in mem.items():
            by = {p["events"]: p["rss_kib"] for p in points}
            per = (by[2_000_000] - by[1_000_000]) * 1024 / 1_000_000 if 2_000_000 in by and 1_000_000 in by else None
            cells = " | ".join(f"{by[n] / 1024:.1f} MiB" if n in by else "—" for n in (0, 500_000, 1_000_000, 2_000_000))
            lines.append(f"| {label} | {cells} | {per:.0f} |" if per is not None else f"| {label} | {cells} | — |")
        lines += ["", "These small events leave out most of a task's documented fields, so each one drifts (an",
                  "undocumented field and 17 missing ones, a record line of about 2 KiB). A step whose",
                  "consumers fall behind the load would leave its peak backlog in the RSS, since glibc keeps",
                  "what was freed: that is the likely reading of a bytes-per-event figure far above its",
                  "neighbours (not verified with a heap profile). The 0.5 M → 1 M step of the same run shows",
                  "what one remembered event costs.", ""]

    prof = run_result("profile")
    if prof is not None:
        lines += ["## Where the time goes", "",
                  "`bench/profile.py`: `perf record` on `cfwh dev` (default flags, symbols kept: `make profile`)",
                  f"while wrk sends new signed events ({prof['requests_per_s']:,.0f} answers/s while recorded). Samples",
                  "by where the code lives, then the heaviest symbols by self time:", "",
                  "| where | share of samples |", "|---|---|"]
        lines += [f"| {area} | {percent:.1f}% |" for area, percent in prof["areas"].items() if percent >= 0.5]
        lines += ["", "What the profile taught, and what changed for it:", "",
                  "- **The kernel's share is the answers' TCP path**, not ours to cut: writing each answer over",
                  "  loopback runs the receiving side's softirq too (waking wrk), and the bare floor pays the",
                  "  same. What is ours in it: thread wake-ups (futex) and the log and record-line writes; the",
                  "  record lines are one write per batch, and the log lines now reach stderr through a 64 KiB",
                  "  buffer flushed whenever the writer thread has nothing more (a write per line before).",
                  "- **glibc's malloc and free** are the next largest share: the allocations of each event",
                  "  (the record's strings, the typed event, the report and its line). A faster allocator",
                  "  (mimalloc) was tried in `cfwh` twice, the last time on 2026-12-06 (not in this run): it",
                  "  counts fewer instructions an event, but in alternating rounds it answered no more a",
                  "  second, with a p99 far past the 5 ms target (fewer still with its purging off): it is",
                  "  not in.",
                  "- **A worker preempted inside a short lock** (the memory store, the queues, stdout for a",
                  "  batch of record lines) stalls the others on a machine whose cores the sender shares:",
                  "  `cfwh dev` runs one tokio worker more than the cores (`TOKIO_WORKER_THREADS` overrides",
                  "  it). Its row in the price list compares it with tokio's one per core in this run; the",
                  "  rounds' noise can hide what it wins, and its count shows it costs nothing.",
                  "- **Decoding a typed event** went through `#[serde(flatten)]`, which copies every key and",
                  "  value of the body into a buffer before reading the fields from it. The events now decode",
                  "  in one pass over the keys (`shared/src/events/decode.rs`), counted a little cheaper;",
                  "  what remains of decoding is reading the strings themselves.",
                  "- **The inspector's cost lay in what it caused elsewhere**: one lock over all its rows,",
                  "  taken by ingest's workers and by every consumer, and a `HeaderMap` and a record line",
                  "  copied under it. It now records into two fixed rings, a lock per slot and a move, and",
                  "  formats only for a page: its rows in the price list. An open page under load is updated",
                  "  once a second, not five times: nearly all 200 rows change between two updates.",
                  "- **Counting instructions found what timing could not** (`bench/instructions.py`, the price",
                  "  list's last column): the shipped handlers' info line per event (about 12% of an event's",
                  "  instructions with its formatting and the writer thread's wake-ups; now a debug line, as",
                  "  the record line already says what became of the event), `--chaos-percent`'s SHA-256 of",
                  "  every `PayloadId` even at 0%, and a new X-Ray trace ID built by formatting and parsing hex",
                  "  (now one formatting pass). The order guard and tracing count under 3% each.",
                  "- **The memory store** hashed a `String` key into a map of boxed items (about 380 bytes an",
                  "  event, never forgotten): a completion is now 40 bytes of map under a keyed 128-bit hash,",
                  "  and what is past its memory is swept as the store grows (the memory table).",
                  "", "| self | where | symbol |", "|---|---|---|"]
        for item in prof["top"][:15]:
            # perf pads the column and may add empty ones ("-") after it.
            symbol = item["symbol"].strip().split("  ")[0].replace("|", "\\|")
            if len(symbol) > 90:
                symbol = symbol[:87] + "…"
            lines.append(f"| {item['percent']:.2f}% | {item['dso']} | `{symbol}` |")
        lines.append("")

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

    dr = run_result("drift")
    if dr is not None:
        def median_run(run, field):
            values = sorted(r[field] for r in dr["rounds"] if r["run"] == run)
            return values[len(values) // 2] if values else None
        n = dr["events"]
        lines += ["## Drift over history: `cfwh drift`", "",
                  f"`bench/drift_scan.py`: {n:,} archived task events in a folder with the archive's layout over",
                  f"30 days, {dr['planted']:,} of them with an undocumented field. `cfwh drift --dir --json` read",
                  "every object (16 at once, a page of 1,000 keys listed at a time), checked each event as the",
                  "consumers do, and found exactly the planted events; beside it, in the same rounds, `find |",
                  "xargs cat` of the same files: reading them, nothing parsed. Of two alternating rounds, the",
                  "slower (time and memory each).", "",
                  "| | events per second | time | peak RSS |", "|---|---|---|---|"]
        for run, label in (("cfwh drift", "`cfwh drift`"), ("cat", "`find \\| xargs cat` of the same files")):
            seconds, rss = median_run(run, "seconds"), median_run(run, "rss_kib")
            if seconds:
                lines.append(f"| {label} | {n / seconds:,.0f} | {seconds:.1f} s | {rss / 1024:.1f} MiB |")
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
        cost = run_result("cost")
        per_million = cost["guard_dollars_per_million"] if cost else 0.75
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
                  "(the facet's version) and one more write (the version raised, before the completion), as",
                  f"counted below: +1 write unit and +1 read unit, **+${per_million:.2f} per million events** on",
                  "demand ([Cost per million events](docs/operations.md#cost-per-million-events)), and about one more round trip (~10 ms) of",
                  "consumer time per record, which the consumer's batch runs concurrently. FIFO queues cost",
                  "$0.10 more per million SQS requests than standard ones: +$0.12 per million events.", ""]

    cost = run_result("cost")
    if cost is not None:
        prices = cost["prices"]
        lines += ["## Cost per event, counted", "",
                  "`cli/tests/it/cost.rs`, run by `make bench` against moto: the AWS requests the deployed code",
                  "sends per event, counted on the real SDK clients as they are sent; DynamoDB's capacity units",
                  "from AWS's published rules (a write unit per KB of item, twice in a transaction; a read unit",
                  "per 4 KB, strongly consistent), with the sizes of the items read back (every one under 1 KB),",
                  f"at ${prices['write_unit_per_million']} per million write units and ${prices['read_unit_per_million']}",
                  "per million read units (on demand, us-east-1). Ingest sends one `SendMessage` per accepted",
                  f"delivery ({cost['ingest']['SendMessage']} counted); the event source's receives and deletes are",
                  "batched by AWS ([Cost per million events](docs/operations.md#cost-per-million-events)).", "",
                  "| event | DynamoDB requests | write units | read units | per million events |",
                  "|---|---|---|---|---|"]
        for name, row in cost["dynamodb"].items():
            ops = ", ".join(f"{n} × {op}" for op, n in row["operations"].items())
            lines.append(f"| {name} | {ops} | {row['write_units']:g} | {row['read_units']:g} | "
                         f"${row['dollars_per_million']:.3f} |")
        lines += ["", f"The order guard adds **${cost['guard_dollars_per_million']:.2f} per million** processed events "
                  "(target: at most $0.75): the facet's version read before the handler, and raised in a write of",
                  "its own after it, before the completion (it was a two-item transaction: $2.00).", ""]

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
                  "| function | bootstrap | zipped | budget (zipped) |", "|---|---|---|---|"]
        budget = {"ingest": 2.5, "consume": 3.0}
        for function, size, zipped in sizes:
            limit = budget.get(function)
            verdict = f"{limit:.1f} MiB, {'within' if zipped / 1048576 <= limit else '**over**'}" if limit else "—"
            lines.append(f"| {function} | {size / 1048576:.2f} MiB | {zipped / 1048576:.2f} MiB | {verdict} |")
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
