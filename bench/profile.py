#!/usr/bin/env python3
"""Where `cfwh dev`'s time goes under load: `perf record` on the process while wrk sends
new signed events, then the heaviest symbols (self time) and a summary by where the code
lives (the kernel, glibc's allocator, the rest of glibc, the binary).

    python3 bench/profile.py [BINARY] [-- cfwh dev flags]

BINARY should keep its symbols: `make profile` builds one with
`CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only` in
target/profile. Writes target/bench/profile.json (read by bench/report.py) and, with
`--folded`, target/bench/profile.folded for a flame graph (inferno-flamegraph).
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
import load  # noqa: E402
from harness import cfwh_groups, free_port, sayer  # noqa: E402

OUT = os.path.join(ROOT, "target", "bench")
say = sayer("profile")
MALLOC = ("malloc", "free", "_int_", "cfree", "realloc", "calloc", "tcache", "unlink_chunk", "malloc_consolidate",
          "sysmalloc", "arena_get")


def where(dso, symbol):
    if dso.startswith("[kernel") or dso == "[unknown]" and symbol.startswith("0xffff"):
        return "kernel"
    if "libc" in dso:
        return "glibc allocator" if any(m in symbol for m in MALLOC) else "glibc, other"
    if dso.startswith("cfwh") or dso.startswith("ingest") or "cfwh" in dso:
        return "cfwh (its code and its crates)"
    return dso or "other"


def symbols(data):
    """Every (self %, dso, symbol) of the recording, as `perf report` gives them."""
    report = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--stdio", "-g", "none", "--sort", "dso,symbol", "--percent-limit", "0",
         "-F", "overhead,dso,symbol"],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = []
    for line in report.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "%" not in line.split()[0]:
            continue
        percent, rest = line.split(None, 1)
        dso, _, symbol = rest.partition(" [")
        # perf pads the column and may add empty ones ("-") after it.
        symbol = symbol.split("] ", 1)[-1].strip().split("  ")[0]
        rows.append((float(percent.rstrip("%")), dso.strip(), symbol))
    return rows


def main():
    args = sys.argv[1:]
    folded = "--folded" in args
    args = [a for a in args if a != "--folded"]
    flags = []
    if "--" in args:
        flags = args[args.index("--") + 1:]
        args = args[:args.index("--")]
    binary = args[0] if args else os.path.join(ROOT, "target", "profile", "release", "cfwh")
    os.makedirs(OUT, exist_ok=True)
    pool = os.path.join(OUT, "profile-pool.txt")
    size = int(os.environ.get("CFWH_PROFILE_POOL", "600000"))
    load.POOL_SIZE = size
    load.CFWH = binary
    say(f"signing {size:,} new events")
    load.make_pool(pool)
    port = free_port()
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    env[cfwh_groups(cfwh=binary)["env"]["webhook_secret"]] = load.SECRET
    data = os.path.join(OUT, "perf.data")
    with open(os.path.join(OUT, "profile-lines.jsonl"), "w") as lines, open(os.path.join(OUT, "profile-stderr.log"), "w") as err:
        process = subprocess.Popen([binary, "dev", "--addr", f"127.0.0.1:{port}", *flags], stdout=lines, stderr=err, env=env)
        started = time.monotonic()
        load.wait_first_answer(port, started, b'{"PayloadId":"warmup","EventGroupName":"user","Action":"UserLoggedIn","EventDatetimeUtc":%d}' % int(time.time() * 1000))
        record = ["perf", "record", "-F", "999", "-p", str(process.pid), "-o", data, "--quiet"]
        if folded:
            record += ["--call-graph", "dwarf,16384", "-F", "199"]
        perf = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        result = load.run_wrk(port, pool, "profile")
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    say(f"{result['requests_per_s']:,.0f} answers/s, p99 {result['p99_us'] / 1000:.2f} ms while recorded")
    samples = symbols(data)
    top = sorted(({"percent": p, "dso": dso, "symbol": sym} for p, dso, sym in samples if p >= 0.3),
                 key=lambda item: -item["percent"])
    areas = {}
    for percent, dso, symbol in samples:
        area = where(dso, symbol)
        areas[area] = areas.get(area, 0.0) + percent
    if folded:
        script = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True).stdout
        with open(os.path.join(OUT, "profile.perf-script"), "w") as f:
            f.write(script)
    out = {"flags": flags, "requests_per_s": result["requests_per_s"], "p99_us": result["p99_us"], "top": top[:25],
           "areas": dict(sorted(areas.items(), key=lambda kv: -kv[1]))}
    with open(os.path.join(OUT, "profile.json"), "w") as f:
        json.dump(out, f, indent=2)
    for area, percent in out["areas"].items():
        print(f"{percent:6.1f}%  {area}")
    print()
    for item in top[:25]:
        print(f"{item['percent']:6.2f}%  {item['dso'][:20]:20}  {item['symbol'][:110]}")


if __name__ == "__main__":
    sys.exit(main())
