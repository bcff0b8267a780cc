#!/usr/bin/env python3
"""What the inspector costs `cfwh dev`: the same pool of signed unique events sent by wrk
for the same time to three pipelines in one run: `--inspector off`; on (the default on a
loopback address) with no page open, where each delivery costs a lock and a few
reference-counted clones; and on with a page open, following the live updates (each
delivery and record line then also builds the row's JSON and sends it to the page).

For each: answers per second, records done end to end per second, and the peak memory of
`cfwh dev` (the inspector keeps at most 200 deliveries, 64 KiB of body each), the median
of ROUNDS runs (CFWH_BENCH_ROUNDS, 3) taken in turn, since two cores shared with wrk make
one run noisy. Writes target/bench/inspector.json; the numbers are in bench/history.md.
"""

import http.client
import json
import os
import statistics
import sys
import threading

os.environ.setdefault("CFWH_BENCH_DURATION", "5s")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402
from forward import count_processed, make_pool, timed_run  # noqa: E402
from load import OUT, say  # noqa: E402


def follow_page(port, seen):
    """An open page: reads the event stream until the server ends it."""

    def read():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        connection.request("GET", "/_cfwh/api/events", headers={"Accept": "text/event-stream"})
        response = connection.getresponse()
        for line in response:
            if line.startswith(b"event: rows"):
                seen[0] += 1

    threading.Thread(target=read, daemon=True).start()


def one_run(pool, label, extra, page):
    seen = [0]
    during = (lambda port: follow_page(port, seen)) if page else None
    result, lines_path, first, done = timed_run(pool, f"inspector-{label}", extra, during)
    processed, _, twice = count_processed(lines_path)
    result.update(processed=processed, processed_twice=twice, page_updates=seen[0],
                  end_to_end_per_s=processed / max(done - first, 1e-3))
    return result


def main():
    os.makedirs(OUT, exist_ok=True)
    pool = os.path.join(OUT, "inspector-pool.txt")
    say(f"signing a pool of {load.POOL_SIZE} unique events")
    make_pool(pool)
    runs = {"off": (["--inspector", "off"], False), "on": (["--inspector", "on"], False),
            "page": (["--inspector", "on"], True)}
    samples = {label: [] for label in runs}
    for _ in range(int(os.environ.get("CFWH_BENCH_ROUNDS", "3"))):
        for label, (extra, page) in runs.items():
            samples[label].append(one_run(pool, label, extra, page))
    results = {}
    for label, taken in samples.items():
        results[label] = {key: statistics.median(r[key] for r in taken)
                          for key in ("requests_per_s", "end_to_end_per_s", "peak_rss_kib", "page_updates")}
        results[label]["processed_twice"] = sum(r["processed_twice"] for r in taken)
    results["settings"] = {"pool": load.POOL_SIZE, "duration": load.DURATION, "connections": load.CONNECTIONS,
                           "cpus": os.cpu_count(), "rounds": len(samples["off"])}
    with open(os.path.join(OUT, "inspector.json"), "w") as f:
        json.dump(results, f, indent=2)
    for label in ("off", "on", "page"):
        r = results[label]
        say(f"{label}: {r['requests_per_s']:,.0f} answers/s, {r['end_to_end_per_s']:,.0f} done/s, "
            f"peak RSS {r['peak_rss_kib'] / 1024:.1f} MiB, {r['page_updates']:.0f} page updates (medians)")


if __name__ == "__main__":
    main()
