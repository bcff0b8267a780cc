#!/usr/bin/env python3
"""`cfwh dev`'s memory per remembered event: its RSS once 0.5 M, 1 M and 2 M new signed
events are processed and the queues are empty, with the inspector on and off. (That what
is past its memory is forgotten is a unit test's: a pre-signed pool cannot keep events
younger than a short memory while it is sent, and older ones are expired, dead-lettered
and kept in memory, which would measure the dead-letter list instead.)

Writes target/bench/memory.json (read by bench/report.py). Run through `make bench`.
"""

import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import rounds as R  # noqa: E402
from harness import cfwh_groups, free_port, sayer, sign  # noqa: E402

say = sayer("bench")
STEPS = [500_000, 500_000, 1_000_000]  # new events per step: 0.5 M, 1 M, 2 M in all


def small_pool(path, start, size):
    """`size` small task events (about 150 bytes), numbered from `start`, signed."""
    now = int(time.time() * 1000)
    with open(path, "w") as out:
        for i in range(start, start + size):
            body = ('{"PayloadId":"m-%d-%d","EventGroupName":"task","Action":"TaskCompleted",'
                    '"EventDatetimeUtc":%d,"Data":{"TaskId":"t-%d"}}' % (now, i, now, i % 1000))
            out.write(f"{sign(R.SECRET, body.encode())}\t{body}\n")
    return path


def run(flags, label, steps=STEPS):
    port = free_port()
    env = dict(os.environ, RUST_LOG="warn")
    env[cfwh_groups()["env"]["webhook_secret"]] = R.SECRET
    lines_path = os.path.join(R.OUT, f"memory-{label}-lines.jsonl")
    points = []
    with open(lines_path, "w") as out, open(os.path.join(R.OUT, f"memory-{label}-stderr.log"), "w") as err:
        process = subprocess.Popen([R.CFWH, "dev", "--addr", f"127.0.0.1:{port}", *flags], stdout=out, stderr=err,
                                   env=env)
        try:
            R.wait_answer(port, process)
            time.sleep(0.5)
            lines = R.Lines(lines_path)
            base = lines.count()
            points.append({"events": 0, "rss_kib": R.rss_kib(process.pid)})
            sent = 0
            for size in steps:
                pool = small_pool(os.path.join(R.OUT, "memory-pool.txt"), sent, size)
                # Long enough to send the whole pool; what comes after is re-sent (a
                # duplicate), which is not remembered again.
                result = R.wrk(port, pool, f"{size // 25_000 + 3}s", 32, 2, f"memory-{label}")
                if result["unique_sent"] < size:
                    raise SystemExit(f"bench: only {result['unique_sent']} of {size} events sent; lengthen the run")
                sent += size
                deadline = time.monotonic() + 300
                while lines.count() - base < sent and time.monotonic() < deadline:
                    time.sleep(0.2)
                time.sleep(1.0)
                rss = R.rss_kib(process.pid)
                points.append({"events": sent, "processed": lines.count() - base, "rss_kib": rss})
                say(f"{label}: {sent:,} events remembered, RSS {rss / 1024:.1f} MiB")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=300)
    return points


def main():
    os.makedirs(R.OUT, exist_ok=True)
    results = {
        "inspector on": run(["--inspector", "on"], "on"),
        "inspector off": run(["--inspector", "off"], "off"),
    }
    with open(os.path.join(R.OUT, "memory.json"), "w") as f:
        json.dump(results, f, indent=2)
    for label, points in results.items():
        first, last = points[1], points[-1]
        per_event = (last["rss_kib"] - first["rss_kib"]) * 1024 / (last["events"] - first["events"])
        say(f"{label}: {per_event:.0f} bytes per event between {first['events']:,} and {last['events']:,}")


if __name__ == "__main__":
    sys.exit(main())
