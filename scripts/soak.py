#!/usr/bin/env python3
"""make soak: 20,000 unique signed events plus 10% re-deliveries, 5% injected handler
failures and one SQS outage, through `cfwh dev --sqs-endpoint` against moto.

moto runs behind a TCP proxy that this script stops for a while mid-stream (every
connection refused and the open ones cut): the SQS outage. The sender behaves like
Creative Force (a non-2xx answer is retried, up to 3 times) but waits seconds, not
minutes. At the end every accepted event must be processed once or be in its
dead-letter queue; re-deliveries must never be applied twice; nothing may be lost.
Prints the counts and writes target/soak/summary.json.
"""

import asyncio
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cfwh_groups, free_port, sayer, sign, wait_for_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "soak")
SECRET = "soak-secret"
EVENTS = int(os.environ.get("SOAK_EVENTS", "20000"))
REDELIVERIES = EVENTS // 10
CHAOS_PERCENT = 5
WORKERS = int(os.environ.get("SOAK_SENDERS", "8"))
DRAIN_SECONDS = int(os.environ.get("SOAK_DRAIN_SECONDS", "1800"))
say = sayer("soak")


class Proxy:
    """A TCP proxy that can be switched off (refuse new connections, cut open ones)."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.port = free_port()
        self.up = True
        self.open = set()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result()

    async def _serve(self):
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _client(self, reader, writer):
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        tasks = {asyncio.ensure_future(self._pipe(reader, up_writer)), asyncio.ensure_future(self._pipe(up_reader, writer))}
        self.open |= tasks
        await asyncio.gather(*tasks, return_exceptions=True)
        self.open -= tasks

    def set(self, up):
        def apply():
            self.up = up
            if not up:
                for task in list(self.open):
                    task.cancel()
        self.loop.call_soon_threadsafe(apply)


def chaos_bucket(payload_id):
    return hashlib.sha256(payload_id.encode()).digest()[0] % 100


def deliver(url, body, stats, lock):
    """Like Creative Force: one attempt and up to 3 retries of a non-2xx answer."""
    for attempt in range(4):
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "X-CF-Event": "Soak", "X-CF-Signature": sign(SECRET, body)})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as e:
            status = e.code
        except OSError:
            status = 0
        with lock:
            stats[status] = stats.get(status, 0) + 1
        if 200 <= status < 300:
            return True
        time.sleep(2 + attempt * 2)
    return False


def main():
    os.makedirs(OUT, exist_ok=True)
    venv_bin = subprocess.run([os.path.join(ROOT, "scripts", "tools.sh")], capture_output=True, text=True, check=True).stdout.strip()
    # Two moto processes, one for SQS and one for DynamoDB: moto is single-threaded
    # Python, and one process serving both was the bottleneck of the first run.
    moto_port, dynamo_port = free_port(), free_port()
    motos = [subprocess.Popen([os.path.join(venv_bin, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=open(os.path.join(OUT, f"moto-{name}.log"), "w"), stderr=subprocess.STDOUT)
             for name, port in (("sqs", moto_port), ("dynamodb", dynamo_port))]
    proxy = Proxy(moto_port)
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "cfwh")
    described = cfwh_groups("soak", binary)
    groups = described["groups"]
    routes = {route["group"]: route for route in described["routes"] if route["group"]}
    dev_port = free_port()
    env = dict(os.environ, RUST_LOG="warn", AWS_ACCESS_KEY_ID="soak", AWS_SECRET_ACCESS_KEY="soak", AWS_REGION="us-east-1")
    env[described["env"]["webhook_secret"]] = SECRET
    time.sleep(1.5)
    lines_path = os.path.join(OUT, "lines.jsonl")
    dev = subprocess.Popen(
        [binary, "dev", "--addr", f"127.0.0.1:{dev_port}", "--sqs-endpoint", f"http://127.0.0.1:{proxy.port}",
         "--dynamodb-endpoint", f"http://127.0.0.1:{dynamo_port}", "--queue-prefix", "soak", "--table", "soak",
         "--retry-delay", "2s", "--max-receives", "5", "--chaos-percent", str(CHAOS_PERCENT)],
        stdout=open(lines_path, "w"), stderr=open(os.path.join(OUT, "cfwh.log"), "w"), env=env)
    url = f"http://127.0.0.1:{dev_port}/payload"
    try:
        wait_for_port(dev_port, dev, 60, "soak: cfwh dev did not start; see target/soak/cfwh.log")

        bodies = []
        for i in range(EVENTS):
            group = groups[i % len(groups)]
            event = {"PayloadId": f"soak-{i:06d}", "EventGroupName": group, "Action": "Created",
                     "EventDatetimeUtc": int(time.time() * 1000), "Seq": i}
            bodies.append(json.dumps(event, separators=(",", ":")).encode())
        plan = list(range(EVENTS)) + [i * 10 for i in range(REDELIVERIES)]  # every tenth event twice
        work = queue.Queue()
        for n, i in enumerate(plan):
            work.put((n, i))
        stats, lock, accepted, given_up, finished = {}, threading.Lock(), set(), set(), [0]
        outage = {"at": len(plan) // 2, "started": None, "ended": None}

        def worker():
            while True:
                try:
                    n, i = work.get_nowait()
                except queue.Empty:
                    return
                if n == outage["at"] and outage["started"] is None:
                    outage["started"] = time.time()
                    proxy.set(False)
                    say(f"SQS outage begins after {n} deliveries")
                    def restore():
                        time.sleep(8)
                        proxy.set(True)
                        outage["ended"] = time.time()
                        say("SQS back")
                    threading.Thread(target=restore, daemon=True).start()
                ok = deliver(url, bodies[i], stats, lock)
                with lock:
                    (accepted if ok else given_up).add(i)
                    finished[0] += 1
                    if finished[0] % 2000 == 0:
                        say(f"{finished[0]} of {len(plan)} deliveries answered, {time.time() - started:.0f} s")

        started = time.time()
        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent_for = time.time() - started
        say(f"sent {len(plan)} deliveries in {sent_for:.0f} s: answers {dict(sorted(stats.items()))}")

        always_fail = {i for i in accepted if chaos_bucket(f"soak-{i:06d}") < CHAOS_PERCENT and chaos_bucket(f"soak-{i:06d}") % 2 == 1}
        fail_once = {i for i in accepted if chaos_bucket(f"soak-{i:06d}") < CHAOS_PERCENT and chaos_bucket(f"soak-{i:06d}") % 2 == 0}
        expected_processed = accepted - always_fail

        def tally():
            processed, counts, dead = {}, {}, set()
            with open(lines_path) as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a line still being written
                    counts[record["outcome"]] = counts.get(record["outcome"], 0) + 1
                    i = int(record["payload_id"].split("-")[1])
                    if record["outcome"] == "processed":
                        processed[i] = processed.get(i, 0) + 1
                    elif record["outcome"] == "dead-lettered":
                        dead.add(i)
            return processed, counts, dead

        import boto3
        sqs = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1",
                           aws_access_key_id="soak", aws_secret_access_key="soak")
        sources = [sqs.get_queue_url(QueueName=routes[group]["queue"])["QueueUrl"] for group in groups]

        def left_in_sources():
            total = 0
            for source in sources:
                attributes = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=[
                    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed"])["Attributes"]
                total += sum(int(v) for v in attributes.values())
            return total

        # Done when the source queues are empty (nothing visible, in flight or delayed)
        # on two polls in a row: every message was deleted or moved to its DLQ by SQS,
        # and nothing more can happen. The checks below then say whether that is right.
        deadline, empty_polls = time.time() + DRAIN_SECONDS, 0
        while time.time() < deadline:
            empty_polls = empty_polls + 1 if left_in_sources() == 0 else 0
            if empty_polls == 2:
                break
            time.sleep(2)
        drained_after = time.time() - started
        dev.send_signal(signal.SIGTERM)
        dev.wait(timeout=600)
        processed, counts, dead = tally()

        # Read every dead-letter queue to the end: each message must be an injected
        # every-attempt failure and sit in the DLQ of its own group.
        in_dlqs, dlq_payloads, misplaced = 0, set(), []
        for group in groups:
            dlq = sqs.get_queue_url(QueueName=routes[group]["dead_letter_queue"])["QueueUrl"]
            while True:
                messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=3600,
                                               WaitTimeSeconds=0).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    in_dlqs += 1
                    body = json.loads(message["Body"])
                    dlq_payloads.add(int(body["PayloadId"].split("-")[1]))
                    if body["EventGroupName"] != group:
                        misplaced.append(body["PayloadId"])
        left = left_in_sources()

        lost = sorted(i for i in accepted if i not in processed and i not in dlq_payloads)
        twice = sorted(i for i, n in processed.items() if n > 1)
        summary = {
            "events": EVENTS, "redeliveries": REDELIVERIES, "deliveries": len(plan), "answers": stats,
            "accepted_unique": len(accepted), "given_up_by_sender": len(given_up),
            "processed_unique": len(processed), "processed_twice": len(twice),
            "duplicates": counts.get("duplicate", 0), "failed_attempts": counts.get("failed", 0),
            "expected_dead_lettered": len(always_fail), "payloads_in_dlqs": len(dlq_payloads),
            "messages_in_dlqs": in_dlqs, "dead_lettered_lines": len(dead),
            # A receive whose answer was cut by the outage still counts towards
            # maxReceiveCount: such a message reaches its DLQ one attempt early, unseen.
            "dead_lettered_without_a_line": len(dlq_payloads - dead),
            "left_in_source_queues": left,
            "failed_once_then_processed": len(fail_once & set(processed)), "expected_fail_once": len(fail_once),
            "lost": len(lost), "outage_seconds": round((outage["ended"] or 0) - (outage["started"] or 0), 1),
            "send_seconds": round(sent_for), "drained_after_seconds": round(drained_after),
            "cfwh_exit": dev.returncode,
        }
        with open(os.path.join(OUT, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        for key, value in summary.items():
            say(f"{key}: {value}")
        problems = []
        if lost:
            problems.append(f"{len(lost)} accepted events lost, e.g. {lost[:5]}")
        if twice:
            problems.append(f"{len(twice)} events processed twice, e.g. {twice[:5]}")
        # An event answered 503 four times in a row was never accepted: the sender gives up
        # on it, as Creative Force would. That is the contract (no 2xx for anything not
        # stored), not a loss; the count is reported.
        if dlq_payloads != always_fail:
            problems.append(f"the DLQs hold {len(dlq_payloads)} payloads, expected the {len(always_fail)} always-failing ones")
        if expected_processed - set(processed):
            problems.append(f"{len(expected_processed - set(processed))} events that can succeed were never processed")
        if dead - dlq_payloads:
            problems.append(f"{len(dead - dlq_payloads)} payloads printed as dead-lettered are not in a DLQ")
        if fail_once - set(processed):
            problems.append(f"{len(fail_once - set(processed))} payloads that fail once were never processed")
        if misplaced:
            problems.append(f"{len(misplaced)} messages in another group's DLQ, e.g. {misplaced[:5]}")
        if left:
            problems.append(f"{left} messages still in the source queues")
        if dev.returncode != 0:
            problems.append(f"cfwh dev exited {dev.returncode} on SIGTERM, not 0")
        if problems:
            raise SystemExit("soak: FAILED: " + "; ".join(problems))
        say("held: nothing lost, nothing applied twice, every failure retried or dead-lettered")
    finally:
        if dev.poll() is None:
            dev.kill()
        for moto in motos:
            moto.terminate()


if __name__ == "__main__":
    sys.exit(main())
