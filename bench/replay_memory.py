#!/usr/bin/env python3
"""What `cfwh replay` holds in memory: 100,000 archived task events, signed, in a folder
with the archive's layout, replayed as a dry run (every object listed, read and its
signature verified; nothing sent). Two layouts of the same events: spread over ten days
(10,000 a day) and all on one day. Replay reads day by day, so its memory follows the
largest day, not the span; three rounds each, alternating, the peak RSS and the time.

`python3 bench/replay_memory.py [--before OLD_CFWH]` also runs another binary (an older
`cfwh`, which listed the whole span before reading) in the same rounds, for the side by
side. Writes target/bench/replay.json; `bench/report.py` puts it into BENCHMARKS.md.
"""

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import CFWH, OUT, say  # noqa: E402

SECRET = "bench-replay-secret"
EVENTS = int(os.environ.get("CFWH_BENCH_REPLAY_EVENTS", "100000"))
DAY_MS = 86_400_000
START_MS = 1_795_910_400_000  # 2026-11-29T00:00:00Z


def write_archive(root, days):
    """EVENTS task events over `days` days, each with the metadata the archive writes."""
    per_day = EVENTS // days
    sample = json.load(open(os.path.join(os.path.dirname(__file__), "..", "events", "task.json")))
    for day in range(days):
        t = time.gmtime((START_MS + day * DAY_MS) // 1000)
        folder = os.path.join(root, "events", "task", f"{t.tm_year:04}", f"{t.tm_mon:02}", f"{t.tm_mday:02}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_day):
            at = START_MS + day * DAY_MS + i * (DAY_MS // per_day)
            payload_id = f"bench-{day}-{i}"
            event = dict(sample, PayloadId=payload_id, EventDatetimeUtc=at)
            body = json.dumps(event).encode()
            signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            path = os.path.join(folder, f"{at}-{payload_id}.json")
            with open(path, "wb") as f:
                f.write(body)
            with open(path + ".meta.json", "w") as f:
                json.dump({"signature": signature, "received-at": str(at), "action": "Completed"}, f)


def replay(cfwh, root, days):
    """The dry run's peak RSS (KiB), seconds, and what it said."""
    since = time.strftime("%Y-%m-%d", time.gmtime(START_MS // 1000))
    until = time.strftime("%Y-%m-%d", time.gmtime((START_MS + days * DAY_MS) // 1000))
    command = ["/usr/bin/time", "-f", "%M %e", cfwh, "replay", "--dir", root, "--group", "task",
               "--since", since, "--until", until, "--dry-run"]
    env = dict(os.environ, CF_WEBHOOK_SECRET=SECRET)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    rss, seconds = done.stderr.strip().splitlines()[-1].split()
    if f"would send {EVENTS}," not in done.stdout:
        raise SystemExit(f"replay did not verify every event: {done.stdout}{done.stderr[-2000:]}")
    return int(rss), float(seconds)


def main():
    before = sys.argv[sys.argv.index("--before") + 1] if "--before" in sys.argv else None
    binaries = [("now", CFWH)] + ([("before", before)] if before else [])
    work = tempfile.mkdtemp(prefix="cfwh-replay-bench-")
    try:
        layouts = {}
        for days in (10, 1):
            root = os.path.join(work, f"{days}-days")
            say(f"writing {EVENTS:,} archived events over {days} day(s)")
            write_archive(root, days)
            layouts[days] = root
        results = {"events": EVENTS, "rounds": []}
        for round_ in range(3):
            for days, root in layouts.items():
                for name, binary in binaries:
                    rss, seconds = replay(binary, root, days)
                    results["rounds"].append({"binary": name, "days": days, "rss_kib": rss, "seconds": seconds})
                    say(f"round {round_ + 1}: {name}, {days} day(s): peak RSS {rss / 1024:.1f} MiB, {seconds:.2f} s")
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, "replay.json"), "w") as f:
            json.dump(results, f, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
