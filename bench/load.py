#!/usr/bin/env python3
"""End-to-end load: `cfwh dev` (release) and Creative Force's reference receiver (Sinatra
on puma), fed the same pool of unique signed events by wrk, in one run.

Writes target/bench/load.json and bench/load.svg; `bench/report.py` turns them (and the
criterion results) into BENCHMARKS.md. Run through `make bench`.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from harness import cfwh_groups, free_port, sayer, sign  # noqa: E402

OUT = os.path.join(ROOT, "target", "bench")
SECRET = "bench-secret"
POOL_SIZE = int(os.environ.get("CFWH_BENCH_POOL", "800000"))
DURATION = os.environ.get("CFWH_BENCH_DURATION", "10s")
CONNECTIONS = int(os.environ.get("CFWH_BENCH_CONNECTIONS", "32"))
THREADS = int(os.environ.get("CFWH_BENCH_THREADS", "2"))
CFWH = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "cfwh")
say = sayer("bench")


def make_pool(path):
    """POOL_SIZE unique signed events at `path` (bench/rounds.py's pool); their count."""
    import rounds  # noqa: E402
    rounds.make_pool(path, POOL_SIZE, cfwh=CFWH)
    return POOL_SIZE


def post(port, body, timeout=1.0):
    """A POST to the receiver on `port` signed with `SECRET` (which bench/forward.py sets
    to its receiver's for that one's warm-up): its status, or None (bench/rounds.py's)."""
    import rounds  # noqa: E402
    return rounds.post(port, body, timeout, secret=SECRET)


def wait_first_answer(port, started, body, limit=60.0):
    """Seconds from process start to the first 200 answer."""
    while time.monotonic() - started < limit:
        if post(port, body, timeout=0.5) == 200:
            return time.monotonic() - started
        time.sleep(0.002)
    raise SystemExit("bench: the receiver did not answer 200 in time")


def run_wrk(port, pool, label):
    result = os.path.join(OUT, f"wrk-{label}.json")
    env = dict(os.environ, CFWH_POOL=pool, CFWH_THREADS=str(THREADS), CFWH_WRK_RESULT=result)
    say(f"wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION} against {label}")
    subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION}", "--timeout", "5s", "-s",
         os.path.join(ROOT, "bench", "wrk_pool.lua"), f"http://127.0.0.1:{port}/payload"],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )
    with open(result) as f:
        data = json.load(f)
    data["requests_per_s"] = data["requests"] / (data["duration_us"] / 1e6)
    return data


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def chart(results, path):
    """Two panels: requests/s, and latency percentiles (log scale), both receivers."""
    names = [("cfwh", "cfwh dev", "#2b6cb0"), ("reference", "reference (Sinatra on puma)", "#c05621"),
             ("floor", "floor (bare axum)", "#718096")]
    width, height = 760, 330
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           '<text x="20" y="22" font-size="15" font-weight="bold">Same machine, same run, same pool of signed events (wrk)</text>']
    # Panel 1: throughput.
    top, bottom, left = 60, 280, 40
    peak = max(results[k]["requests_per_s"] for k, _, _ in names)
    svg.append(f'<text x="{left}" y="{top - 12}" font-weight="bold">requests/s</text>')
    for i, (key, label, color) in enumerate(names):
        value = results[key]["requests_per_s"]
        h = (bottom - top) * value / peak
        x = left + 10 + i * 85
        svg.append(f'<rect x="{x}" y="{bottom - h:.1f}" width="70" height="{h:.1f}" fill="{color}"/>')
        svg.append(f'<text x="{x + 35}" y="{bottom - h - 5:.1f}" text-anchor="middle">{value:,.0f}</text>')
        svg.append(f'<text x="{x + 35}" y="{bottom + 16}" text-anchor="middle">{key}</text>')
    # Panel 2: latency percentiles, log scale from 10 µs to 10 s.
    left2, right2 = 330, width - 20
    import math
    lo, hi = math.log10(10), math.log10(10_000_000)

    def y(us):
        return bottom - (bottom - top) * (math.log10(max(us, 10)) - lo) / (hi - lo)

    svg.append(f'<text x="{left2}" y="{top - 12}" font-weight="bold">latency (log scale)</text>')
    for us, text in [(100, "100 µs"), (1_000, "1 ms"), (10_000, "10 ms"), (100_000, "100 ms"), (1_000_000, "1 s")]:
        svg.append(f'<line x1="{left2 + 40}" x2="{right2}" y1="{y(us):.1f}" y2="{y(us):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{left2 + 35}" y="{y(us) + 4:.1f}" text-anchor="end" fill="#666">{text}</text>')
    for j, pct in enumerate(["p50", "p90", "p99", "p999"]):
        for i, (key, label, color) in enumerate(names):
            us = results[key][f"{pct}_us"]
            x = left2 + 50 + j * 95 + i * 29
            svg.append(f'<rect x="{x}" y="{y(us):.1f}" width="26" height="{bottom - y(us):.1f}" fill="{color}"/>')
        svg.append(f'<text x="{left2 + 100 + j * 95}" y="{bottom + 16}" text-anchor="middle">{pct.replace("p999", "p99.9")}</text>')
    for i, (key, label, color) in enumerate(names):
        svg.append(f'<rect x="{20 + i * 240}" y="{height - 22}" width="12" height="12" fill="{color}"/>')
        svg.append(f'<text x="{38 + i * 240}" y="{height - 12}">{label}</text>')
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")


def main():
    """The headline: `cfwh dev` with its default flags, the reference receiver and the bare
    floor, in rounds that alternate them (bench/rounds.py), each number a median."""
    import rounds as R  # noqa: E402
    os.makedirs(OUT, exist_ok=True)
    rounds = int(os.environ.get("CFWH_BENCH_ROUNDS", "3"))
    pool = os.path.join(OUT, "pool.txt")
    say(f"signing a pool of {POOL_SIZE:,} unique events (larger than a run: every request a new event)")
    R.make_pool(pool, POOL_SIZE)
    runs = [
        ("cfwh", lambda: R.cfwh_dev(pool, duration=DURATION, connections=CONNECTIONS, threads=THREADS, label="cfwh")),
        ("reference", lambda: R.reference(pool, duration=DURATION, connections=CONNECTIONS, threads=THREADS)),
        ("floor", lambda: R.floor(pool, duration=DURATION, connections=CONNECTIONS, threads=THREADS)),
    ]
    before = os.environ.get("CFWH_BENCH_BEFORE")
    if before:
        # An earlier build of cfwh dev (CFWH_BENCH_BEFORE: its path, CFWH_BENCH_BEFORE_NAME:
        # what it is), in the same rounds: what a change gained, measured side by side.
        runs.append(("before", lambda: R.cfwh_dev(pool, duration=DURATION, connections=CONNECTIONS, threads=THREADS,
                                                  label="before", binary=before)))
    measured = R.alternate(runs, rounds)
    results = {name: R.summary(values) for name, values in measured.items()}
    results["runs"] = measured
    c, r, f = results["cfwh"], results["reference"], results["floor"]
    results["ratio"] = c["requests_per_s"] / r["requests_per_s"]
    results["floor_ratio"] = c["requests_per_s"] / f["requests_per_s"]
    if before:
        results["before_name"] = os.environ.get("CFWH_BENCH_BEFORE_NAME", before)
    # Counted, beside the rounds (bench/instructions.py): instructions per request of
    # `cfwh dev` (the whole path of an event) and of the floor, numbers noise does not move.
    import instructions as I  # noqa: E402
    if I.available():
        results["counted"] = {"cfwh": I.per_event(R.CFWH, [], "load-cfwh")["instructions_per_event"],
                              "floor": I.per_event(None, [], "load-floor")["instructions_per_event"]}
        if before:
            results["counted"]["before"] = I.per_event(before, [], "load-before")["instructions_per_event"]
        say("counted: " + ", ".join(f"{k} {v:,.0f} instructions per request" for k, v in results["counted"].items()))
    results["settings"] = {"pool": POOL_SIZE, "duration": DURATION, "connections": CONNECTIONS, "threads": THREADS,
                           "cpus": os.cpu_count(), "rounds": rounds}
    with open(os.path.join(OUT, "load.json"), "w") as out:
        json.dump(results, out, indent=2)
    chart(results, os.path.join(ROOT, "bench", "load.svg"))
    say(f"cfwh dev: {c['requests_per_s']:,.0f} answers/s, p99 {c['p99_us'] / 1000:.2f} ms, backlog at stop "
        f"{c['backlog_at_stop']:,.0f}, {c['end_to_end_per_s']:,.0f} processed/s end to end, "
        f"{c['cpu_us_per_request']:.1f} µs CPU/request")
    say(f"reference: {r['requests_per_s']:,.0f}/s; floor: {f['requests_per_s']:,.0f}/s")
    say(f"cfwh / reference: {results['ratio']:.1f}x (target 10x); cfwh / floor: {results['floor_ratio']:.2f}x (target 0.5x)")
    failures = []
    for run in measured["cfwh"]:
        if run["non_2xx"] or run["socket_errors"]:
            failures.append(f"cfwh answered {run['non_2xx']} non-2xx and had {run['socket_errors']} socket errors")
        if run["processed"] < run["accepted"] or run["processed_twice"]:
            failures.append(f"processed {run['processed']} (twice: {run['processed_twice']}) for {run['accepted']} "
                            "accepted events")
    if failures:
        raise SystemExit("bench: " + "; ".join(failures))


if __name__ == "__main__":
    sys.exit(main())
