#!/usr/bin/env python3
"""Cold start: the ingest bootstrap's init against a lambda_http hello world built with
the same profile, in the same run, under a stand-in for the Lambda Runtime API.

Init is the time from spawning the process to its first `GET .../invocation/next`: what
Lambda bills and waits for before the first request. Both binaries are started ROUNDS
times, alternately; the medians are compared. Writes target/bench/init.json.

Usage: bench/cold_start.py HELLO INGEST   (paths of the two release binaries)

With --store (and AWS_ENDPOINT_URL naming a moto_server): ingest's init when it reads
the webhook secret from Secrets Manager, against when it reads the required header's
value there too (the two reads run at once). Writes target/bench/init_store.json. Not
part of `make bench`, which starts no moto_server; the numbers are in bench/history.md.
"""

import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from harness import cfwh_groups, sayer  # noqa: E402

OUT = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "bench")
ROUNDS = int(os.environ.get("CFWH_BENCH_INIT_ROUNDS", "30"))
say = sayer("cold-start")


class RuntimeApi(http.server.ThreadingHTTPServer):
    """Answers nothing: it only notes when the first `next` arrives."""

    daemon_threads = True

    def __init__(self):
        self.asked = threading.Event()
        self.asked_at = None
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next") and not self.server.asked.is_set():
            self.server.asked_at = time.perf_counter()
            self.server.asked.set()
        # Hold the long poll until the process is killed.
        self.server.asked.wait(30)
        time.sleep(5)

    def log_message(self, *args):
        pass


def init_ms(binary, env):
    api = RuntimeApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.server_address[1]}")
    started = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not api.asked.wait(20):
        process.kill()
        raise SystemExit(f"cold-start: {binary} never asked for work: {process.stderr.read().decode()[-2000:]}")
    took = (api.asked_at - started) * 1000
    process.kill()
    process.wait()
    api.shutdown()
    return took


def alternate(first, second, file):
    """Both (label, binary, env) started ROUNDS times in turn: their medians, minima and
    maxima, and second ÷ first, written to target/bench/<file>."""
    samples = {first[0]: [], second[0]: []}
    for _ in range(ROUNDS):
        for label, binary, env in (first, second):
            samples[label].append(init_ms(binary, env))
    result = {name: {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v)} for name, v in samples.items()}
    result["ratio"] = result[second[0]]["median_ms"] / result[first[0]]["median_ms"]
    result["rounds"] = ROUNDS
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, file), "w") as f:
        json.dump(result, f, indent=2)
    return result


def store_mode(ingest, ingest_env, described):
    """Init with the secret in Secrets Manager, without and with the header's value there."""
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise SystemExit("cold-start: --store needs AWS_ENDPOINT_URL (a moto_server)")
    names = described["env"]
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    tag = f"bench-{os.getpid()}"
    secret = sm.create_secret(Name=f"{tag}-webhook", SecretString="bench-secret-of-32-characters-ok")["ARN"]
    header = sm.create_secret(Name=f"{tag}-header", SecretString="bench-header-value")["ARN"]
    secret_only = dict(ingest_env, AWS_ENDPOINT_URL=endpoint)
    secret_only.pop(names["webhook_secret"], None)
    secret_only[names["webhook_secret_arn"]] = secret
    with_header = dict(secret_only, **{names["required_header_name"]: "X-Studio-Token",
                                       names["required_header_value_arn"]: header})
    result = alternate(("secret", ingest, secret_only), ("secret_and_header", ingest, with_header), "init_store.json")
    say(f"init against {endpoint}, median of {ROUNDS}: secret {result['secret']['median_ms']:.2f} ms, "
        f"secret and header {result['secret_and_header']['median_ms']:.2f} ms -> {result['ratio']:.2f}x")


def main():
    store = "--store" in sys.argv
    hello, ingest = [a for a in sys.argv[1:] if a != "--store"][:2]
    described = cfwh_groups(cfwh=os.path.join(os.path.dirname(ingest), "cfwh") if os.path.exists(
        os.path.join(os.path.dirname(ingest), "cfwh")) else None)
    base = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
    }
    # Ingest as the template configures it, but for the secret (an ARN would make init
    # call Secrets Manager, which the stand-in does not serve).
    ingest_env = dict(base, **{route["queue_url_var"]: f"https://sqs.us-east-1.amazonaws.com/1/{route['queue']}"
                               for route in described["routes"]})
    ingest_env[described["env"]["webhook_secret"]] = "bench-secret"
    if store:
        return store_mode(ingest, ingest_env, described)
    result = alternate(("hello", hello, base), ("ingest", ingest, ingest_env), "init.json")
    say(f"init, median of {ROUNDS}: hello {result['hello']['median_ms']:.2f} ms, ingest {result['ingest']['median_ms']:.2f} ms "
        f"-> {result['ratio']:.2f}x")


if __name__ == "__main__":
    main()
