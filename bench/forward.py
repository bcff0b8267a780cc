#!/usr/bin/env python3
"""What forwarding costs `cfwh dev`: the same pool of signed events, sent by wrk for the
same time, once without a destination and once forwarding every processed event to a
local receiver, in one run. The receiver is a second `cfwh dev` whose webhook secret is
the forward secret, so every forward is verified as Creative Force's deliveries are, and
counted once.

For each run: the answers per second (the ack path), and the end-to-end rate (events
processed, and forwarded, per second from the first delivery until the last record is
done). Writes target/bench/forward.json; `bench/report.py` puts it into BENCHMARKS.md.
"""

import json
import os
import signal
import subprocess
import sys
import time

# Enough unique events that wrk never sends one twice in the run: the end-to-end rate is
# then the pipeline's, not the pool's.
os.environ.setdefault("CFWH_BENCH_POOL", "400000")
os.environ.setdefault("CFWH_BENCH_DURATION", "3s")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402
from load import CFWH, OUT, SECRET, cfwh_groups, free_port, make_pool, run_wrk, say, wait_first_answer  # noqa: E402

FORWARD_SECRET = "bench-forward-secret"


def start_dev(port, secret, lines_path, extra=()):
    env = dict(os.environ, RUST_LOG="warn")
    env[cfwh_groups(cfwh=CFWH)["env"]["webhook_secret"]] = secret
    lines = open(lines_path, "w")
    errors = open(lines_path + ".stderr", "w")
    process = subprocess.Popen([CFWH, "dev", "--addr", f"127.0.0.1:{port}", *extra], stdout=lines, stderr=errors, env=env)
    return process, lines


def count_processed(path, skip=("warmup", "receiver-warmup")):
    processed, forwarded, twice, seen = 0, 0, 0, set()
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if record.get("payload_id") in skip:
                continue
            if record["outcome"] == "processed":
                processed += 1
                twice += record["payload_id"] in seen
                seen.add(record["payload_id"])
                forwarded += record.get("destinations", {}).get("http") == "delivered"
    return processed, forwarded, twice


def last_line_time(path):
    return os.path.getmtime(path)


def timed_run(pool, name, extra=(), during=None):
    """One `cfwh dev` (with `extra` flags) fed the pool by wrk, drained and stopped: wrk's
    result, its record lines' path, and when the first delivery was sent and the last
    record was done (epoch seconds). `during(port)`, when given, is called once `cfwh dev`
    answers, before the load."""
    port = free_port()
    lines_path = os.path.join(OUT, f"{name}.jsonl")
    started = time.monotonic()
    process, lines = start_dev(port, SECRET, lines_path, extra)
    warmup = json.dumps({"PayloadId": "warmup", "EventGroupName": "user", "Action": "UserLoggedIn",
                         "EventDatetimeUtc": int(time.time() * 1000)}).encode()
    wait_first_answer(port, started, warmup)
    if during:
        during(port)
    time.sleep(0.5)
    first = time.time()
    result = run_wrk(port, pool, name)
    result["peak_rss_kib"] = load.peak_rss_kib(process.pid)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=600)
    lines.close()
    if result["unique_sent"] > load.POOL_SIZE or result["requests"] > load.POOL_SIZE:
        raise SystemExit(f"bench: wrk went round the pool ({result['requests']} requests): raise CFWH_BENCH_POOL")
    return result, lines_path, first, last_line_time(lines_path)


def one_run(pool, label, forward_url=None):
    extra = ["--forward-url", forward_url, "--forward-secret", FORWARD_SECRET] if forward_url else []
    result, lines_path, first, done = timed_run(pool, f"forward-{label}", extra)
    processed, forwarded, twice = count_processed(lines_path)
    result.update(processed=processed, forwarded=forwarded, processed_twice=twice,
                  end_to_end_per_s=processed / max(done - first, 1e-3), seconds_to_done=done - first)
    return result


def main():
    os.makedirs(OUT, exist_ok=True)
    pool = os.path.join(OUT, "forward-pool.txt")
    say(f"signing a pool of {load.POOL_SIZE} unique events")
    make_pool(pool)

    receiver_port = free_port()
    receiver_lines = os.path.join(OUT, "forward-receiver.jsonl")
    receiver, receiver_out = start_dev(receiver_port, FORWARD_SECRET, receiver_lines)
    try:
        warmup = json.dumps({"PayloadId": "receiver-warmup", "EventGroupName": "user", "Action": "UserLoggedIn",
                             "EventDatetimeUtc": int(time.time() * 1000)}).encode()
        load.SECRET = FORWARD_SECRET  # the receiver's warm-up is signed with its own secret
        wait_first_answer(receiver_port, time.monotonic(), warmup)
        load.SECRET = SECRET
        plain = one_run(pool, "plain")
        forwarding = one_run(pool, "forwarding", f"http://127.0.0.1:{receiver_port}/forwarded")
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=600)
        receiver_out.close()
    received, _, received_twice = count_processed(receiver_lines)
    results = {"plain": plain, "forwarding": forwarding, "receiver_processed": received,
               "receiver_processed_twice": received_twice,
               "settings": {"pool": load.POOL_SIZE, "duration": load.DURATION, "connections": load.CONNECTIONS,
                            "cpus": os.cpu_count()}}
    with open(os.path.join(OUT, "forward.json"), "w") as f:
        json.dump(results, f, indent=2)
    for label, r in (("without", plain), ("forwarding", forwarding)):
        say(f"{label}: {r['requests_per_s']:,.0f} answers/s, {r['processed']} processed, "
            f"{r['end_to_end_per_s']:,.0f} processed/s end to end, forwarded {r['forwarded']}")
    say(f"the receiver verified and processed {received} forwards (twice: {received_twice})")
    failures = []
    if forwarding["forwarded"] != forwarding["processed"] or received != forwarding["processed"] or received_twice:
        failures.append(f"forwarded {forwarding['forwarded']}, received {received} (twice {received_twice}) "
                        f"for {forwarding['processed']} processed")
    if plain["processed_twice"] or forwarding["processed_twice"]:
        failures.append("an event was processed twice")
    if failures:
        raise SystemExit("bench: " + "; ".join(failures))


if __name__ == "__main__":
    sys.exit(main())
