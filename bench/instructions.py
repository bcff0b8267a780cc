#!/usr/bin/env python3
"""Instructions per event of `cfwh dev`, counted rather than timed: the process runs under
valgrind's cachegrind (no cache simulation), is sent N new signed events, is stopped, and
the instructions it executed are read from cachegrind's total. Two runs, of `SMALL` and
`LARGE` events, and their difference divided by `LARGE - SMALL` is the cost of an event
with start-up and shutdown taken out. Ingest, the queue, the consumer, the store and the
record line are all in it: the whole path of an event through the process.

Why: the VMs this is measured on have no hardware counters (`perf stat -e instructions`
answers "not supported"), and answers per second between identical rounds move ±12%, more
than the 3–5% gates the price list holds features to. A count does not move with the
machine's neighbours: the same binary, flags and events give the same count within 1%.

    python3 bench/instructions.py [name=BINARY[|flags]] ...   # default: the release cfwh

Prints one line per configuration; writes target/bench/instructions.json.
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import rounds  # noqa: E402
from harness import cfwh_groups, free_port, sayer  # noqa: E402

OUT = os.path.join(ROOT, "target", "bench")
SMALL = int(os.environ.get("CFWH_COUNT_SMALL", "2000"))
LARGE = int(os.environ.get("CFWH_COUNT_LARGE", "12000"))
CONNECTIONS = 4
# `CFWH_COUNT_CALLGRIND=1`: callgrind instead, for `callgrind_annotate --inclusive=yes`.
TOOL = (["--tool=callgrind"] if os.environ.get("CFWH_COUNT_CALLGRIND")
        else ["--tool=dhat"] if os.environ.get("CFWH_COUNT_DHAT")
        else ["--tool=cachegrind", "--cache-sim=no", "--branch-sim=no"])
say = sayer("instructions")


def send(port, pool, start, count):
    """Posts `count` pool lines from `start` over `CONNECTIONS` keep-alive connections;
    returns how many were answered 2xx."""
    accepted = [0] * CONNECTIONS

    def worker(k):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for i in range(start + k, start + count, CONNECTIONS):
            signature, body = pool[i]
            connection.request("POST", "/payload", body=body, headers={
                "Content-Type": "application/json", "X-CF-Signature": signature})
            response = connection.getresponse()
            response.read()
            accepted[k] += 200 <= response.status < 300
        connection.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(accepted)


def counted(binary, flags, pool, events, label, env_extra=None):
    """Instructions of one `cfwh dev` run that is sent `events` new events and drained;
    `binary` None: the bare floor (bench/floor), which keeps nothing."""
    port = free_port()
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    if binary is not None:
        env[cfwh_groups(cfwh=binary)["env"]["webhook_secret"]] = rounds.SECRET
    env.update(env_extra or {})
    out = os.path.join(OUT, f"cachegrind-{label}-{events}.out")
    lines_path = os.path.join(OUT, f"count-{label}-lines.jsonl")
    command = ([binary, "dev", "--addr", f"127.0.0.1:{port}", *flags] if binary is not None
               else [rounds.FLOOR, f"127.0.0.1:{port}"])
    with open(lines_path, "w") as lines, open(os.path.join(OUT, f"count-{label}-stderr.log"), "w") as errors:
        process = subprocess.Popen(["valgrind", *TOOL, f"--{TOOL[0].split('=')[1]}-out-file={out}", *command],
                                   stdout=lines, stderr=errors, env=env)
        try:
            rounds.wait_answer(port, process, limit=120)
            accepted = send(port, pool, 0, events)
            deadline, processed = time.monotonic() + 300, rounds.Lines(lines_path)
            while binary is not None and processed.count() < accepted and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=300)
    if TOOL[0] == "--tool=dhat":
        return 0, accepted
    with open(out) as f:
        summary = next(line for line in f if line.startswith(("summary:", "totals:")))
    return int(re.findall(r"\d+", summary)[0]), accepted


def available():
    """True when valgrind is there to count with."""
    return shutil.which("valgrind") is not None


def per_event(binary, flags, label, env_extra=None):
    """Instructions per event of `cfwh dev` with `flags` (`binary` None: per request of the
    bare floor): two counted runs, of `SMALL` and `LARGE` new events, and their difference
    per event."""
    os.makedirs(OUT, exist_ok=True)
    pool_path = os.path.join(OUT, f"count-pool-{label}.txt")
    # Fresh events, stamped now: they must stay inside the replay window.
    rounds.make_pool(pool_path, LARGE, cfwh=binary or rounds.CFWH)
    with open(pool_path) as f:
        pool = [tuple(line.rstrip("\n").split("\t", 1)) for line in f]
    small, small_accepted = counted(binary, flags, pool, SMALL, label, env_extra)
    large, large_accepted = counted(binary, flags, pool, LARGE, label, env_extra)
    if small_accepted != SMALL or large_accepted != LARGE:
        raise SystemExit(f"instructions: {label}: {small_accepted} and {large_accepted} of {SMALL} and {LARGE} accepted")
    return {"flags": list(flags), "instructions_per_event": (large - small) / (LARGE - SMALL),
            "instructions": [small, large], "events": [SMALL, LARGE]}


def main():
    specs = sys.argv[1:] or [f"cfwh={rounds.CFWH}"]
    results = {}
    for spec in specs:
        name, _, rest = spec.partition("=")
        binary, _, flags = rest.partition("|")
        results[name] = per_event(binary, flags.split(), name)
        say(f"{name}: {results[name]['instructions_per_event']:,.0f} instructions per event "
            f"({' '.join(flags.split()) or 'default flags'})")
    with open(os.path.join(OUT, "instructions.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
