#!/usr/bin/env python3
"""`cfwh drift` over a large archive: a million task events (CFWH_BENCH_DRIFT_EVENTS) in a
folder with the archive's layout over 30 days, drift planted in 1% of them (an
undocumented field). Two rounds, alternating `cfwh drift --dir --json` with the floor of
the same work without the check: `cat` of every object the listing names (the same
files, read once, nothing parsed). Each run's peak RSS and time; the report must find
exactly the planted events. Writes target/bench/drift.json; `bench/report.py` puts it
into BENCHMARKS.md.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import CFWH, OUT, say  # noqa: E402

EVENTS = int(os.environ.get("CFWH_BENCH_DRIFT_EVENTS", "1000000"))
DAYS = 30
DAY_MS = 86_400_000
START_MS = 1_795_910_400_000  # 2026-11-29T00:00:00Z
PLANT_EVERY = 100


def write_archive(root):
    """EVENTS task events over DAYS days; every PLANT_EVERY-th with an undocumented field."""
    sample = json.load(open(os.path.join(os.path.dirname(__file__), "..", "events", "task.json")))
    per_day = EVENTS // DAYS
    planted = 0
    for day in range(DAYS):
        t = time.gmtime((START_MS + day * DAY_MS) // 1000)
        folder = os.path.join(root, "events", "task", f"{t.tm_year:04}", f"{t.tm_mon:02}", f"{t.tm_mday:02}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_day):
            at = START_MS + day * DAY_MS + i * (DAY_MS // per_day)
            payload_id = f"bench-{day}-{i}"
            event = dict(sample, PayloadId=payload_id, EventDatetimeUtc=at)
            if (day * per_day + i) % PLANT_EVERY == 0:
                event["Priority"] = "high"
                planted += 1
            with open(os.path.join(folder, f"{at}-{payload_id}.json"), "wb") as f:
                f.write(json.dumps(event).encode())
    return per_day * DAYS, planted


def timed(command):
    """Peak RSS (KiB), seconds and stdout of `command` under /usr/bin/time."""
    done = subprocess.run(["/usr/bin/time", "-f", "%M %e"] + command, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stderr.decode()[-2000:]}")
    rss, seconds = done.stderr.decode().strip().splitlines()[-1].split()
    return int(rss), float(seconds), done.stdout


def main():
    work = tempfile.mkdtemp(prefix="cfwh-drift-bench-")
    try:
        say(f"writing {EVENTS:,} archived task events over {DAYS} days, drift in 1 of {PLANT_EVERY}")
        events, planted = write_archive(work)
        results = {"events": events, "planted": planted, "rounds": []}
        floor = ["sh", "-c", f"find '{work}' -type f -name '*.json' -print0 | xargs -0 cat > /dev/null"]
        for round_ in range(2):
            rss, seconds, out = timed([CFWH, "drift", "--dir", work, "--group", "task", "--json"])
            report = json.loads(out)["groups"]["task"]
            found = {f.get("field"): f["events"] for f in report["findings"]}
            if report["events"] != events or found != {"Priority": planted}:
                raise SystemExit(f"cfwh drift did not find exactly what was planted: {report}")
            results["rounds"].append({"run": "cfwh drift", "rss_kib": rss, "seconds": seconds})
            say(f"round {round_ + 1}: cfwh drift: {events / seconds:,.0f} events/s, peak RSS {rss / 1024:.1f} MiB")
            rss, seconds, _ = timed(floor)
            results["rounds"].append({"run": "cat", "rss_kib": rss, "seconds": seconds})
            say(f"round {round_ + 1}: cat of the same files: {events / seconds:,.0f} objects/s")
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, "drift.json"), "w") as f:
            json.dump(results, f, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
