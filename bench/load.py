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
from harness import cfwh_groups, free_port, sayer, sign  # noqa: E402

OUT = os.path.join(ROOT, "target", "bench")
SECRET = "bench-secret"
POOL_SIZE = int(os.environ.get("CFWH_BENCH_POOL", "60000"))
DURATION = os.environ.get("CFWH_BENCH_DURATION", "15s")
CONNECTIONS = int(os.environ.get("CFWH_BENCH_CONNECTIONS", "64"))
THREADS = int(os.environ.get("CFWH_BENCH_THREADS", "2"))
CFWH = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "cfwh")
say = sayer("bench")


def make_pool(path):
    samples = {}
    groups = cfwh_groups(cfwh=CFWH)["groups"]
    for group in groups:
        with open(os.path.join(ROOT, "events", f"{group}.json"), "rb") as f:
            samples[group] = json.loads(f.read())
    now = int(time.time() * 1000)
    with open(path, "w") as out:
        for i in range(POOL_SIZE):
            event = dict(samples[groups[i % len(groups)]])
            event["PayloadId"] = f"bench-{i:08d}-{os.getpid()}"
            event["EventDatetimeUtc"] = now
            body = json.dumps(event, separators=(",", ":")).encode()
            out.write(f"{sign(SECRET, body)}\t{body.decode()}\n")
    return POOL_SIZE


def post(port, body, timeout=1.0):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/payload",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-CF-Signature": sign(SECRET, body)},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


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


def bench_cfwh(pool):
    binary = CFWH
    port = free_port()
    lines_path = os.path.join(OUT, "cfwh-lines.jsonl")
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    env[cfwh_groups(cfwh=CFWH)["env"]["webhook_secret"]] = SECRET
    started = time.monotonic()
    with open(lines_path, "w") as lines, open(os.path.join(OUT, "cfwh-stderr.log"), "w") as errors:
        process = subprocess.Popen([binary, "dev", "--addr", f"127.0.0.1:{port}"], stdout=lines, stderr=errors, env=env)
        warmup = json.dumps({"PayloadId": "warmup", "EventGroupName": "user", "Action": "UserLoggedIn",
                             "EventDatetimeUtc": int(time.time() * 1000)}).encode()
        startup = wait_first_answer(port, started, warmup)
        say(f"cfwh dev answered its first delivery {startup * 1000:.1f} ms after start")
        result = run_wrk(port, pool, "cfwh")
        rss = peak_rss_kib(process.pid)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    processed, duplicate, other, twice = 0, 0, 0, 0
    seen = set()
    with open(lines_path) as f:
        for line in f:
            record = json.loads(line)
            if record["payload_id"] == "warmup":
                continue
            if record["outcome"] == "processed":
                processed += 1
                if record["payload_id"] in seen:
                    twice += 1
                seen.add(record["payload_id"])
            elif record["outcome"] == "duplicate":
                duplicate += 1
            else:
                other += 1
    result.update(
        startup_ms=startup * 1000, peak_rss_mib=rss / 1024, processed=processed, duplicates=duplicate,
        other_outcomes=other, processed_twice=twice, exit_code=process.returncode,
    )
    return result


def bench_reference(pool):
    port = free_port()
    reference = os.path.join(ROOT, "bench", "reference")
    env = dict(os.environ, SECRET_TOKEN=SECRET, RACK_ENV="production", APP_ENV="production")
    started = time.monotonic()
    with open(os.path.join(OUT, "puma.log"), "w") as log:
        process = subprocess.Popen(
            ["puma", "-b", f"tcp://127.0.0.1:{port}", "-w", "2", "-t", "4:4", "--environment", "production", "config.ru"],
            cwd=reference, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            body = json.dumps({"PayloadId": "warmup", "EventGroupName": "user", "Action": "UserLoggedIn",
                               "EventDatetimeUtc": 1}).encode()
            startup = wait_first_answer(port, started, body)
            say(f"puma answered its first delivery {startup * 1000:.1f} ms after start")
            result = run_wrk(port, pool, "reference")
            rss = sum(peak_rss_kib(pid) for pid in [process.pid] + children(process.pid))
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    result.update(startup_ms=startup * 1000, peak_rss_mib=rss / 1024)
    return result


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    except FileNotFoundError:
        return []


def chart(results, path):
    """Two panels: requests/s, and latency percentiles (log scale), both receivers."""
    names = [("cfwh", "cfwh dev", "#2b6cb0"), ("reference", "reference (Sinatra on puma)", "#c05621")]
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
        x = left + 20 + i * 110
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
            x = left2 + 55 + j * 95 + i * 36
            svg.append(f'<rect x="{x}" y="{y(us):.1f}" width="30" height="{bottom - y(us):.1f}" fill="{color}"/>')
        svg.append(f'<text x="{left2 + 88 + j * 95}" y="{bottom + 16}" text-anchor="middle">{pct.replace("p999", "p99.9")}</text>')
    for i, (key, label, color) in enumerate(names):
        svg.append(f'<rect x="{20 + i * 260}" y="{height - 22}" width="12" height="12" fill="{color}"/>')
        svg.append(f'<text x="{38 + i * 260}" y="{height - 12}">{label}</text>')
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    pool = os.path.join(OUT, "pool.txt")
    say(f"signing a pool of {POOL_SIZE} unique events")
    make_pool(pool)
    results = {"cfwh": bench_cfwh(pool), "reference": bench_reference(pool)}
    results["ratio"] = results["cfwh"]["requests_per_s"] / results["reference"]["requests_per_s"]
    results["settings"] = {"pool": POOL_SIZE, "duration": DURATION, "connections": CONNECTIONS, "threads": THREADS,
                           "cpus": os.cpu_count()}
    with open(os.path.join(OUT, "load.json"), "w") as f:
        json.dump(results, f, indent=2)
    chart(results, os.path.join(ROOT, "bench", "load.svg"))
    c, r = results["cfwh"], results["reference"]
    say(f"cfwh dev: {c['requests_per_s']:,.0f} req/s, p50 {c['p50_us'] / 1000:.2f} ms, p99 {c['p99_us'] / 1000:.2f} ms, "
        f"non-2xx {c['non_2xx']}, processed {c['processed']} of {c['unique_sent']} unique, peak RSS {c['peak_rss_mib']:.1f} MiB")
    say(f"reference: {r['requests_per_s']:,.0f} req/s, p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms, "
        f"non-2xx {r['non_2xx']}")
    say(f"throughput ratio cfwh / reference: {results['ratio']:.1f}x")
    failures = []
    if c["non_2xx"] or c["socket_errors"]:
        failures.append(f"cfwh answered {c['non_2xx']} non-2xx and had {c['socket_errors']} socket errors")
    if c["processed"] != c["unique_sent"] or c["processed_twice"]:
        failures.append(f"processed {c['processed']} (twice: {c['processed_twice']}) for {c['unique_sent']} unique accepted events")
    if failures:
        raise SystemExit("bench: " + "; ".join(failures))


if __name__ == "__main__":
    sys.exit(main())
