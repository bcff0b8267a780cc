"""What the Python drivers (bench/load.py, scripts/soak.py, scripts/e2e_lambda.py,
scripts/rehearse.py) share: logging with a prefix, free ports, signing like Creative Force,
waiting for a server, the groups as the code defines them, and a receiver for the forward."""

import functools
import hashlib
import hmac
import socket
import time


# The field naming each group's entity in Creative Force's bodies, and one action of one
# facet of it (docs/guarantees.md, "Order per entity"): the drivers give events entities with these.
ENTITY = {"product": ("ProductId", "StatusChanged"), "sample": ("SampleId", "CheckedIn"),
          "user": ("UserId", "UserLoggedIn"), "task": ("TaskId", "Started"),
          "work-unit": ("WorkUnitId", "WorkUnitStatusChanged"), "job": ("JobId", "StatusChanged"),
          "session": ("SessionId", "AddedToSession")}


def sayer(prefix):
    """A print that names its script and is not buffered."""
    return lambda text: print(f"{prefix}: {text}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign(secret, body):
    """X-CF-Signature: HMAC-SHA256 of the exact body, lowercase hex."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def wait_for_port(port, process, seconds, failure):
    """Until 127.0.0.1:port accepts a connection; SystemExit(failure) when `process`
    exits or `seconds` pass first."""
    deadline = time.time() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                raise SystemExit(failure)
            time.sleep(0.2)


def stop(process, seconds=10):
    """SIGTERM, then SIGKILL if `process` has not exited within `seconds`."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@functools.lru_cache(maxsize=None)
def cfwh_groups(queue_prefix=None, cfwh=None, fifo=False):
    """What the code defines for the groups and routes (`cfwh groups --json`): the drivers
    ask the binary (`cfwh`, a built one, or `cargo run`) rather than keep their own copy."""
    import json
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [cfwh] if cfwh else ["cargo", "run", "--quiet", "--package", "cfwh", "--bin", "cfwh", "--"]
    out = subprocess.run(
        command + ["groups", "--json"] + (["--queue-prefix", queue_prefix] if queue_prefix else [])
        + (["--fifo"] if fifo else []),
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def receiver():
    """A studio endpoint for the HTTP forward, on a free port of 127.0.0.1: keeps each
    (X-CF-Signature, body) it is sent and answers 200. Returns (server, url, received)."""
    import http.server
    import threading

    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers.get("X-CF-Signature", ""), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hooks", received
