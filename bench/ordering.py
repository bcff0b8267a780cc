#!/usr/bin/env python3
"""What the per-entity order costs `cfwh dev`: the same pool of signed events about 2,000
entities (versions rising with the pool's order, so nearly every event is applied and
the guard does all its work: a read of the facet's version, and its write with the
completion), sent by wrk for the same time to three pipelines in one run: `--ordering
all` (no guard), `--ordering latest` (the guard, the default), and `--ordering latest
--fifo` (the guard and FIFO queues in memory, as deployed by default).

For each: answers per second (the ack path), and the end-to-end rate (records done,
applied or stale, per second from the first delivery until the last is done). Writes
target/bench/ordering.json; `bench/report.py` puts it into BENCHMARKS.md. The cost of the
extra DynamoDB read and transaction per event is priced in docs/operations.md (*Cost per
million events*): a local run has no DynamoDB bill.
"""

import json
import os
import sys
import time

os.environ.setdefault("CFWH_BENCH_POOL", "400000")
os.environ.setdefault("CFWH_BENCH_DURATION", "3s")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import load  # noqa: E402
from forward import timed_run  # noqa: E402
from harness import ENTITY  # noqa: E402
from load import OUT, ROOT, SECRET, cfwh_groups, CFWH, say, sign  # noqa: E402

ENTITIES = 2000
RUNS = (("all", ["--ordering", "all"]), ("latest", ["--ordering", "latest"]),
        ("latest-fifo", ["--ordering", "latest", "--fifo"]))


def make_pool(path):
    groups = cfwh_groups(cfwh=CFWH)["groups"]
    samples = {}
    for group in groups:
        with open(os.path.join(ROOT, "events", f"{group}.json"), "rb") as f:
            samples[group] = json.loads(f.read())
    base = int(time.time() * 1000) - 600_000
    with open(path, "w") as out:
        for i in range(load.POOL_SIZE):
            j = i % ENTITIES
            group = groups[j % len(groups)]
            field, action = ENTITY[group]
            event = dict(samples[group], Action=action, EventDatetimeUtc=base + i)
            event[field] = f"{group}-{j:05d}"
            event["PayloadId"] = f"order-{i:08d}-{os.getpid()}"
            body = json.dumps(event, separators=(",", ":")).encode()
            out.write(f"{sign(SECRET, body)}\t{body.decode()}\n")


def count(path):
    counts, seen, twice = {}, set(), 0
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if record.get("payload_id") == "warmup":
                continue
            counts[record["outcome"]] = counts.get(record["outcome"], 0) + 1
            if record["outcome"] == "processed":
                twice += record["payload_id"] in seen
                seen.add(record["payload_id"])
    return counts, twice


def one_run(pool, label, extra):
    result, lines_path, first, done = timed_run(pool, f"ordering-{label}", extra)
    counts, twice = count(lines_path)
    finished = counts.get("processed", 0) + counts.get("stale", 0)
    result.update(processed=counts.get("processed", 0), stale=counts.get("stale", 0), outcomes=counts,
                  processed_twice=twice, end_to_end_per_s=finished / max(done - first, 1e-3),
                  seconds_to_done=done - first)
    return result


def main():
    os.makedirs(OUT, exist_ok=True)
    pool = os.path.join(OUT, "ordering-pool.txt")
    say(f"signing a pool of {load.POOL_SIZE} unique events about {ENTITIES} entities")
    make_pool(pool)
    results = {label: one_run(pool, label, extra) for label, extra in RUNS}
    results["settings"] = {"pool": load.POOL_SIZE, "entities": ENTITIES, "duration": load.DURATION,
                           "connections": load.CONNECTIONS, "cpus": os.cpu_count()}
    with open(os.path.join(OUT, "ordering.json"), "w") as f:
        json.dump(results, f, indent=2)
    for label, _ in RUNS:
        r = results[label]
        say(f"{label}: {r['requests_per_s']:,.0f} answers/s, {r['processed']:,} processed, {r['stale']:,} stale, "
            f"{r['end_to_end_per_s']:,.0f} done/s end to end")
    failures = [label for label, _ in RUNS if results[label]["processed_twice"]]
    if failures:
        raise SystemExit(f"bench: an event was processed twice in {failures}")
    if results["all"]["stale"]:
        raise SystemExit("bench: --ordering all skipped events as stale")


if __name__ == "__main__":
    sys.exit(main())
