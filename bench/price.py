#!/usr/bin/env python3
"""The price list: what each feature of `cfwh dev` costs, measured against its absence in
the same run. For each feature, `cfwh dev` with it and without it, in rounds that
alternate the two (bench/rounds.py), fed new signed events; each number the median of
its rounds. Writes target/bench/price.json (read by bench/report.py). Run by `make bench`.
"""

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import instructions as I  # noqa: E402
import rounds as R  # noqa: E402
from harness import free_port, sayer  # noqa: E402

say = sayer("bench")
ROUNDS = int(os.environ.get("CFWH_BENCH_ROUNDS", "3"))
DURATION = os.environ.get("CFWH_PRICE_DURATION", "6s")
POOL = int(os.environ.get("CFWH_PRICE_POOL", "600000"))
FORWARD_SECRET = "bench-forward-secret"


def features(archive_dir, forward_port):
    """(name, on by default, flags with it, flags without it, extra env, a page open[, extra
    env without it])."""
    return [
        # `cfwh dev` runs one tokio worker more than the cores (cli/src/main.rs); without it,
        # one per core, tokio's default.
        ("a spare worker thread (cores + 1)", True, [], [], {}, False,
         {"TOKIO_WORKER_THREADS": str(len(os.sched_getaffinity(0)))}),
        ("inspector, no page open", True, [], ["--inspector", "off"], {}, False),
        ("inspector, one page open", True, [], ["--inspector", "off"], {}, True),
        ("order guard (`--ordering latest`)", True, [], ["--ordering", "all"], {}, False),
        ("tracing (`--tracing on`)", True, [], ["--tracing", "off"], {}, False),
        ("drift check (`--drift on`)", True, [], ["--drift", "off"], {}, False),
        ("archive (`--archive-dir`)", False, ["--archive-dir", archive_dir], [], {}, False),
        ("HTTP forward (`--forward-url`, to a local receiver)", False,
         ["--forward-url", f"http://127.0.0.1:{forward_port}/hook"], [], {"CF_FORWARD_SECRET": FORWARD_SECRET}, False),
        ("EventBridge (`--event-bus`, batched `PutEvents` to a local stand-in)", False,
         ["--event-bus", "bench", "--eventbridge-endpoint", f"http://127.0.0.1:{forward_port}"], [],
         {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}, False),
    ]


def main():
    os.makedirs(R.OUT, exist_ok=True)
    pool = os.path.join(R.OUT, "price-pool.txt")
    out = []
    with tempfile.TemporaryDirectory(prefix="cfwh-bench-archive-") as archive_dir:
        # The forward's receiver and EventBridge's stand-in: the bare floor, which answers at
        # once, so that the rows price cfwh's side (signing, the HTTP client and its
        # connections; the SDK's request, batched by ten).
        forward_port = free_port()
        receiver = subprocess.Popen([R.FLOOR, f"127.0.0.1:{forward_port}"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        try:
            for name, default, with_flags, without_flags, env, page, *rest in features(archive_dir, forward_port):
                without_env = {**env, **(rest[0] if rest else {})}
                # A fresh pool per feature: events must stay inside the replay window.
                R.make_pool(pool, POOL)
                say(f"price of the {name}: {ROUNDS} rounds of {DURATION} with and without")
                label = "price-" + "".join(c for c in name if c.isalnum())[:20]
                runs = [
                    ("with", lambda: R.cfwh_dev(pool, with_flags, duration=DURATION, label=label + "-with",
                                                page=page, env_extra=env)),
                    ("without", lambda: R.cfwh_dev(pool, without_flags, duration=DURATION, label=label + "-without",
                                                   env_extra=without_env)),
                ]
                measured = R.alternate(runs, ROUNDS)
                w, wo = R.summary(measured["with"]), R.summary(measured["without"])
                row = {"feature": name, "default": default, "with": w, "without": wo,
                       "cost": 1 - w["requests_per_s"] / wo["requests_per_s"],
                       "cpu_cost": w["cpu_us_per_request"] / wo["cpu_us_per_request"] - 1
                       if wo["cpu_us_per_request"] else None,
                       "end_to_end_cost": 1 - w["end_to_end_per_s"] / wo["end_to_end_per_s"]}
                # The same comparison counted (bench/instructions.py): a number the machine's
                # noise does not move, for the gates. A page cannot be held open under valgrind.
                if I.available() and not page:
                    counted = {side: I.per_event(R.CFWH, flags, f"{label}-{side}", side_env)["instructions_per_event"]
                               for side, flags, side_env in (("with", with_flags, env),
                                                             ("without", without_flags, without_env))}
                    row["instructions"] = counted
                    row["instruction_cost"] = counted["with"] / counted["without"] - 1
                    say(f"{name}: {counted['with']:,.0f} instructions per event with, {counted['without']:,.0f} without")
                for run in measured["with"] + measured["without"]:
                    if run["processed"] < run["accepted"] or run["processed_twice"]:
                        raise SystemExit(f"bench: {name}: processed {run['processed']} (twice "
                                         f"{run['processed_twice']}) for {run['accepted']} accepted")
                out.append(row)
                say(f"{name}: {w['requests_per_s']:,.0f}/s with, {wo['requests_per_s']:,.0f}/s without: "
                    f"costs {row['cost'] * 100:.1f}% of the answers, {row['end_to_end_cost'] * 100:.1f}% end to end")
        finally:
            receiver.terminate()
            receiver.wait(timeout=10)
    with open(os.path.join(R.OUT, "price.json"), "w") as f:
        json.dump({"rounds": ROUNDS, "duration": DURATION, "pool": POOL, "features": out}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
