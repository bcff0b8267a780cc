#!/usr/bin/env python3
"""Side-by-side measurements that noise cannot fool: receivers (a `cfwh dev` with some
flags, the reference receiver, the bare floor) each fed new signed events by wrk, in
rounds that alternate them, each number the median of its rounds, with `perf stat`'s
instructions and CPU time per request beside it.

Used by bench/load.py (the headline and the price list); each run of a `cfwh dev` is a
new process, so every event of the pool is new to it (the pool is larger than a run).
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from harness import cfwh_groups, free_port, sayer, sign  # noqa: E402

OUT = os.path.join(ROOT, "target", "bench")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
CFWH = os.path.join(TARGET, "release", "cfwh")
FLOOR = os.path.join(TARGET, "release", "floor")
SECRET = "bench-secret"
say = sayer("bench")


def make_pool(path, size, cfwh=CFWH):
    """`size` unique events of every group, signed, stamped now: "<signature>\\t<body>" lines."""
    samples = {}
    groups = cfwh_groups(cfwh=cfwh)["groups"]
    for group in groups:
        with open(os.path.join(ROOT, "events", f"{group}.json"), "rb") as f:
            samples[group] = json.loads(f.read())
    now = int(time.time() * 1000)
    with open(path, "w") as out:
        for i in range(size):
            event = dict(samples[groups[i % len(groups)]])
            event["PayloadId"] = f"bench-{i:08d}-{os.getpid()}-{now}"
            event["EventDatetimeUtc"] = now
            body = json.dumps(event, separators=(",", ":"))
            out.write(f"{sign(SECRET, body.encode())}\t{body}\n")
    return path


def post(port, body, timeout=1.0, secret=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/payload", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-CF-Signature": sign(secret or SECRET, body)})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def wait_answer(port, process, limit=60.0):
    started = time.monotonic()
    body = json.dumps({"PayloadId": "warmup", "EventGroupName": "user", "Action": "UserLoggedIn",
                       "EventDatetimeUtc": int(time.time() * 1000)}).encode()
    while time.monotonic() - started < limit:
        if process.poll() is not None:
            raise SystemExit(f"bench: the receiver exited with {process.returncode} before answering")
        if post(port, body, timeout=0.5) == 200:
            return time.monotonic() - started
        time.sleep(0.005)
    raise SystemExit("bench: the receiver did not answer 200 in time")


def wrk(port, pool, duration, connections, threads, label):
    result = os.path.join(OUT, f"wrk-{label}.json")
    env = dict(os.environ, CFWH_POOL=pool, CFWH_THREADS=str(threads), CFWH_WRK_RESULT=result)
    subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", "--timeout", "5s", "-s",
                    os.path.join(ROOT, "bench", "wrk_pool.lua"), f"http://127.0.0.1:{port}/payload"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    with open(result) as f:
        data = json.load(f)
    data["requests_per_s"] = data["requests"] / (data["duration_us"] / 1e6)
    return data


def perf_stat_start(pids, path):
    """perf stat on `pids` (instructions, task-clock) until stopped; None without perf."""
    try:
        return subprocess.Popen(["perf", "stat", "-x", ",", "-e", "instructions,task-clock", "-p",
                                 ",".join(str(p) for p in pids), "-o", path],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        return None


def perf_stat_stop(perf, path):
    if perf is None:
        return {}
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=30)
    counts = {}
    try:
        with open(path) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) > 3 and fields[0] and fields[0][0].isdigit():
                    counts[fields[2]] = float(fields[0])
    except OSError:
        pass
    return counts


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Lines:
    """Counts the `processed` lines of a growing file, reading only what is new."""

    def __init__(self, path):
        self.path, self.offset, self.processed, self.rest = path, 0, 0, b""

    def count(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        complete, _, self.rest = (self.rest + data).rpartition(b"\n")
        self.processed += complete.count(b'"outcome":"processed"') - complete.count(b'"payload_id":"warmup"')
        return self.processed


class Page:
    """An open inspector page: a client reading its server-sent events, as a browser does."""

    def __init__(self, port):
        self.port, self.events, self.stop = port, 0, False
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/_cfwh/api/events", headers={"Host": "127.0.0.1"})
        with urllib.request.urlopen(request, timeout=30) as response:
            for line in response:
                if self.stop:
                    return
                if line.startswith(b"event: rows"):
                    self.events += 1


def cfwh_dev(pool, flags=(), duration="8s", connections=32, threads=2, label="cfwh", binary=CFWH, page=False,
             env_extra=None):
    """One `cfwh dev` process fed new events: answers, latency, instructions and CPU per
    request, the backlog left when the load stopped, the end-to-end rate, exactly-once."""
    os.makedirs(OUT, exist_ok=True)
    port = free_port()
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    env[cfwh_groups(cfwh=binary)["env"]["webhook_secret"]] = SECRET
    env.update(env_extra or {})
    lines_path = os.path.join(OUT, f"{label}-lines.jsonl")
    with open(lines_path, "w") as lines, open(os.path.join(OUT, f"{label}-stderr.log"), "w") as errors:
        process = subprocess.Popen([binary, "dev", "--addr", f"127.0.0.1:{port}", *flags], stdout=lines,
                                   stderr=errors, env=env)
        try:
            wait_answer(port, process)
            viewer = Page(port) if page else None
            stat_path = os.path.join(OUT, f"{label}-perf-stat.csv")
            perf = perf_stat_start([process.pid], stat_path)
            result = wrk(port, pool, duration, connections, threads, label)
            stopped = time.monotonic()
            counts = perf_stat_stop(perf, stat_path)
            lines = Lines(lines_path)
            processed_at_stop = lines.count()
            rss = rss_kib(process.pid)
            # Every accepted event processed: wait for the backlog to drain.
            accepted = result["requests"] - result["non_2xx"]
            processed = processed_at_stop
            deadline = time.monotonic() + 120
            while processed < accepted and time.monotonic() < deadline:
                time.sleep(0.02)
                processed = lines.count()
            drain_s = time.monotonic() - stopped
            if viewer:
                viewer.stop = True
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
    processed, duplicates, twice, other, seen = 0, 0, 0, 0, set()
    with open(lines_path) as f:
        for line in f:
            record = json.loads(line)
            if record["payload_id"] == "warmup":
                continue
            if record["outcome"] == "processed":
                processed += 1
                twice += record["payload_id"] in seen
                seen.add(record["payload_id"])
            elif record["outcome"] == "duplicate":
                duplicates += 1
            else:
                other += 1
    requests = max(result["requests"], 1)
    result.update(
        flags=list(flags), processed=processed, duplicates=duplicates, processed_twice=twice, other_outcomes=other,
        accepted=accepted, backlog_at_stop=max(accepted - processed_at_stop, 0),
        end_to_end_per_s=processed / (result["duration_us"] / 1e6 + drain_s), drain_s=drain_s, rss_mib=rss / 1024,
        exit_code=process.returncode,
        instructions_per_request=counts.get("instructions", 0) / requests,
        cpu_us_per_request=counts.get("task-clock", 0) * 1000 / requests,  # task-clock is in ms
        page_events=viewer.events if page else None,
    )
    return result


def floor(pool, duration="8s", connections=32, threads=2, label="floor"):
    """The bare axum floor (bench/floor) under the same load."""
    port = free_port()
    process = subprocess.Popen([FLOOR, f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_answer(port, process)
        stat_path = os.path.join(OUT, f"{label}-perf-stat.csv")
        perf = perf_stat_start([process.pid], stat_path)
        result = wrk(port, pool, duration, connections, threads, label)
        counts = perf_stat_stop(perf, stat_path)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    requests = max(result["requests"], 1)
    result.update(instructions_per_request=counts.get("instructions", 0) / requests,
                  cpu_us_per_request=counts.get("task-clock", 0) * 1000 / requests)
    return result


def reference(pool, duration="8s", connections=32, threads=2, label="reference"):
    """Creative Force's Sinatra example under puma, 2 workers × 4 threads."""
    port = free_port()
    env = dict(os.environ, SECRET_TOKEN=SECRET, RACK_ENV="production", APP_ENV="production")
    with open(os.path.join(OUT, "puma.log"), "w") as log:
        process = subprocess.Popen(
            ["puma", "-b", f"tcp://127.0.0.1:{port}", "-w", "2", "-t", "4:4", "--environment", "production", "config.ru"],
            cwd=os.path.join(ROOT, "bench", "reference"), env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            wait_answer(port, process)
            time.sleep(0.5)
            pids = [process.pid] + children(process.pid)
            stat_path = os.path.join(OUT, f"{label}-perf-stat.csv")
            perf = perf_stat_start(pids, stat_path)
            result = wrk(port, pool, duration, connections, threads, label)
            counts = perf_stat_stop(perf, stat_path)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    requests = max(result["requests"], 1)
    result.update(instructions_per_request=counts.get("instructions", 0) / requests,
                  cpu_us_per_request=counts.get("task-clock", 0) * 1000 / requests)
    return result


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    except FileNotFoundError:
        return []


def alternate(runs, rounds):
    """Runs every `(name, thunk)` of `runs` once per round, in turn, `rounds` times;
    returns {name: [result, ...]}."""
    results = {name: [] for name, _ in runs}
    for r in range(rounds):
        for name, thunk in runs:
            result = thunk()
            results[name].append(result)
            say(f"round {r + 1}/{rounds} {name}: {result['requests_per_s']:,.0f}/s, p99 {result['p99_us'] / 1000:.2f} ms"
                + (f", {result['instructions_per_request']:,.0f} instructions/request"
                   if result.get("instructions_per_request") else ""))
    return results


def median(results, field):
    values = [r[field] for r in results if r.get(field) is not None]
    return statistics.median(values) if values else None


def summary(results):
    """The median of each numeric field over the rounds, and the rounds' answers/s."""
    fields = {k for r in results for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out = {field: median(results, field) for field in sorted(fields)}
    out["rounds"] = [r["requests_per_s"] for r in results]
    return out
