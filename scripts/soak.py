#!/usr/bin/env python3
"""make soak: 20,000 unique signed events about 2,000 entities, plus 10% re-deliveries,
5% injected handler failures and one SQS outage, through `cfwh dev --fifo
--sqs-endpoint` against moto (SOAK_QUEUE_TYPE=standard: standard queues).

Each entity gets ten events of one facet, with versions (`EventDatetimeUtc`) one second
apart, sent in a shuffled order, so older events arrive after newer ones were applied
(as Creative Force's late retries do), and one of them is sent again later. One
entity's deliveries are sent one after the other; different entities' interleave.

moto runs behind a TCP proxy that this script stops for a while mid-stream (every
connection refused and the open ones cut): the SQS outage. The sender behaves like
Creative Force (a non-2xx answer is retried, up to 3 times) but waits seconds, not
minutes. At the end, with FIFO queues: every accepted event is processed once, `stale`
(exactly those superseded by a newer event of their entity accepted before them), or in
its dead-letter queue; each entity's applied versions only go up; nothing is applied
twice; nothing is lost. Prints the counts and writes target/soak/summary.json.
"""

import asyncio
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ENTITY, cfwh_groups, free_port, sayer, sign, wait_for_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "soak")
SECRET = "soak-secret"
EVENTS = int(os.environ.get("SOAK_EVENTS", "20000"))
PER_ENTITY = 10
ENTITIES = EVENTS // PER_ENTITY
FIFO = os.environ.get("SOAK_QUEUE_TYPE", "fifo") == "fifo"
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


def always_fails(payload_id):
    bucket = chaos_bucket(payload_id)
    return bucket < CHAOS_PERCENT and bucket % 2 == 1


def fails_once(payload_id):
    bucket = chaos_bucket(payload_id)
    return bucket < CHAOS_PERCENT and bucket % 2 == 0


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


def expected_outcomes(accepted):
    """What the pipeline must make of one entity's accepted deliveries (PayloadId, version),
    in the order they were accepted: applied unless a newer one was applied before
    (`stale`), dead-lettered when it always fails, a duplicate once completed."""
    newest, completed = None, set()
    processed, stale, dead = set(), set(), set()
    for payload_id, version in accepted:
        if payload_id in completed:
            continue
        if newest is not None and version < newest:
            stale.add(payload_id)
            completed.add(payload_id)
        elif always_fails(payload_id):
            dead.add(payload_id)
        else:
            processed.add(payload_id)
            completed.add(payload_id)
            newest = version
    return processed, stale, dead


def main():
    os.makedirs(OUT, exist_ok=True)
    venv_bin = subprocess.run([os.path.join(ROOT, "scripts", "tools.sh")], capture_output=True, text=True, check=True).stdout.strip()
    # Two moto processes, one for SQS and one for DynamoDB: moto is single-threaded
    # Python, and one process serving both was the bottleneck of the first run. Started
    # through scripts/moto_server.py, whose FIFO redelivery order is SQS's.
    moto_port, dynamo_port = free_port(), free_port()
    motos = [subprocess.Popen([os.path.join(venv_bin, "python"), os.path.join(ROOT, "scripts", "moto_server.py"),
                               "-H", "127.0.0.1", "-p", str(port)],
                              stdout=open(os.path.join(OUT, f"moto-{name}.log"), "w"), stderr=subprocess.STDOUT)
             for name, port in (("sqs", moto_port), ("dynamodb", dynamo_port))]
    proxy = Proxy(moto_port)
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "cfwh")
    described = cfwh_groups("soak", binary, FIFO)
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
         "--retry-delay", "5s", "--max-receives", "5", "--chaos-percent", str(CHAOS_PERCENT)]
        + (["--fifo"] if FIFO else []),
        stdout=open(lines_path, "w"), stderr=open(os.path.join(OUT, "cfwh.log"), "w"), env=env)
    url = f"http://127.0.0.1:{dev_port}/payload"
    try:
        wait_for_port(dev_port, dev, 60, "soak: cfwh dev did not start; see target/soak/cfwh.log")

        # Ten events per entity, one facet, versions a second apart, in a shuffled order,
        # and one of them (never an always-failing one) sent again later.
        base = int(time.time() * 1000) - 600_000
        bodies, version_of, sequences = {}, {}, []
        for j in range(ENTITIES):
            group = groups[j % len(groups)]
            field, action = ENTITY[group]
            rng = random.Random(j)
            order = list(range(PER_ENTITY))
            rng.shuffle(order)
            for k in order:
                payload_id = f"soak-{j:05d}-{k}"
                event = {"PayloadId": payload_id, "EventGroupName": group, "Action": action,
                         "EventDatetimeUtc": base + k * 1000, field: f"{group}-{j:05d}"}
                if group == "session":
                    event["WorkUnitId"] = f"wu-{j:05d}"
                bodies[payload_id] = json.dumps(event, separators=(",", ":")).encode()
                version_of[payload_id] = base + k * 1000
            sequence = [f"soak-{j:05d}-{k}" for k in order]
            again = [p for p in sequence[:-1] if not always_fails(p)]
            if again:
                repeat = rng.choice(again)
                sequence.insert(rng.randrange(sequence.index(repeat) + 1, len(sequence)) + 1, repeat)
            sequences.append(sequence)
        deliveries = sum(len(sq) for sq in sequences)

        # One sender per entity at a time: worker w owns the entities j with j % WORKERS == w
        # and interleaves them, so the order of an entity's deliveries is known.
        stats, lock, finished = {}, threading.Lock(), [0]
        accepted = [[] for _ in range(ENTITIES)]
        given_up = set()
        outage = {"at": deliveries // 2, "started": None, "ended": None}

        def worker(w):
            mine = [j for j in range(ENTITIES) if j % WORKERS == w]
            for step in range(PER_ENTITY + 1):
                for j in mine:
                    if step >= len(sequences[j]):
                        continue
                    payload_id = sequences[j][step]
                    with lock:
                        n = finished[0]
                    if n >= outage["at"] and outage["started"] is None:
                        with lock:
                            start = outage["started"] is None
                            outage["started"] = outage["started"] or time.time()
                        if start:
                            proxy.set(False)
                            say(f"SQS outage begins after {n} deliveries")

                            def restore():
                                time.sleep(8)
                                proxy.set(True)
                                outage["ended"] = time.time()
                                say("SQS back")
                            threading.Thread(target=restore, daemon=True).start()
                    ok = deliver(url, bodies[payload_id], stats, lock)
                    with lock:
                        if ok:
                            accepted[j].append((payload_id, version_of[payload_id]))
                        else:
                            given_up.add(payload_id)
                        finished[0] += 1
                        if finished[0] % 2000 == 0:
                            say(f"{finished[0]} of {deliveries} deliveries answered, {time.time() - started:.0f} s")

        started = time.time()
        threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent_for = time.time() - started
        say(f"sent {deliveries} deliveries in {sent_for:.0f} s: answers {dict(sorted(stats.items()))}")

        # An event given up by the sender may still have been stored (its answer lost):
        # its entity's expectations are then unknown, and it is left out of the exact checks.
        uncertain = {j for j in range(ENTITIES) if any(p.startswith(f"soak-{j:05d}-") for p in given_up)}
        expected_processed, expected_stale, expected_dead = set(), set(), set()
        for j in range(ENTITIES):
            if j not in uncertain:
                processed_j, stale_j, dead_j = expected_outcomes(accepted[j])
                expected_processed |= processed_j
                expected_stale |= stale_j
                expected_dead |= dead_j
        accepted_unique = {p for entity in accepted for p, _ in entity}
        fail_once = {p for p in accepted_unique if fails_once(p)}

        def entity_of(payload_id):
            return int(payload_id.split("-")[1])

        def tally():
            processed, counts, dead, stale, applied = {}, {}, set(), set(), {}
            with open(lines_path) as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a line still being written
                    outcome, payload_id = record["outcome"], record["payload_id"]
                    counts[outcome] = counts.get(outcome, 0) + 1
                    if outcome == "processed":
                        processed[payload_id] = processed.get(payload_id, 0) + 1
                        applied.setdefault(entity_of(payload_id), []).append(version_of[payload_id])
                    elif outcome == "dead-lettered":
                        dead.add(payload_id)
                    elif outcome == "stale":
                        stale.add(payload_id)
            out_of_order = sorted(j for j, versions in applied.items()
                                  if any(a > b for a, b in zip(versions, versions[1:])))
            return processed, counts, dead, stale, out_of_order

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
        processed, counts, dead, stale, out_of_order = tally()

        # Read every dead-letter queue to the end: each message must be an injected
        # every-attempt failure (or held behind one) and sit in the DLQ of its own group.
        # Each is deleted once read: a FIFO queue gives no more of a message group while
        # one of its messages is received and not deleted.
        in_dlqs, dlq_payloads, misplaced = 0, set(), []
        for group in groups:
            dlq = sqs.get_queue_url(QueueName=routes[group]["dead_letter_queue"])["QueueUrl"]
            while True:
                messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=3600,
                                               WaitTimeSeconds=0).get("Messages", [])
                if not messages:
                    break
                sqs.delete_message_batch(QueueUrl=dlq, Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)])
                for message in messages:
                    in_dlqs += 1
                    body = json.loads(message["Body"])
                    dlq_payloads.add(body["PayloadId"])
                    if body["EventGroupName"] != group:
                        misplaced.append(body["PayloadId"])
        left = left_in_sources()

        # Records of an entity that came in the same batches behind an always-failing event
        # were received (and counted by SQS) each time too, so they can reach the DLQ with
        # it, in order. Such an entity's later outcomes then differ from the plan: it is
        # left out of the exact checks (and counted), as long as every such extra dead
        # letter was accepted after an always-failing event of its own entity.
        held, held_wrongly = set(), []
        for p in dlq_payloads - expected_dead:
            j = entity_of(p)
            if j in uncertain or always_fails(p):
                continue
            order = [q for q, _ in accepted[j]]
            if p in order and any(always_fails(q) for q in order[:order.index(p)]):
                held.add(j)
            else:
                held_wrongly.append(p)
        uncertain |= held
        certain = lambda payloads: {p for p in payloads if entity_of(p) not in uncertain}  # noqa: E731
        expected_processed, expected_stale, expected_dead = (certain(expected_processed), certain(expected_stale),
                                                             certain(expected_dead))
        lost = sorted(p for p in accepted_unique if p not in processed and p not in stale and p not in dlq_payloads)
        twice = sorted(p for p, n in processed.items() if n > 1)
        summary = {
            "queue_type": "fifo" if FIFO else "standard",
            "events": EVENTS, "entities": ENTITIES, "deliveries": deliveries, "answers": stats,
            "accepted_unique": len(accepted_unique), "given_up_by_sender": len(given_up),
            "entities_left_out_of_exact_checks": len(uncertain),
            "entities_held_behind_a_dead_letter": len(held),
            "processed_unique": len(processed), "processed_twice": len(twice),
            "stale": len(stale), "superseded_sent": len(expected_stale),
            "applied_out_of_order_entities": len(out_of_order),
            "duplicates": counts.get("duplicate", 0), "failed_attempts": counts.get("failed", 0),
            "expected_dead_lettered": len(expected_dead), "payloads_in_dlqs": len(dlq_payloads),
            "messages_in_dlqs": in_dlqs, "dead_lettered_lines": len(dead),
            # A receive whose answer was cut by the outage still counts towards
            # maxReceiveCount: such a message reaches its DLQ one attempt early, unseen.
            "dead_lettered_without_a_line": len(dlq_payloads - dead),
            "left_in_source_queues": left,
            "failed_once_then_processed": len(fail_once & set(processed)),
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
        if FIFO:
            if held_wrongly:
                problems.append(f"{len(held_wrongly)} payloads in a DLQ that neither always fail nor came behind "
                                f"one that does, e.g. {held_wrongly[:5]}")
            if out_of_order:
                problems.append(f"{len(out_of_order)} entities applied out of order, e.g. {out_of_order[:5]}")
            for name, got, expected in (("stale", certain(stale), expected_stale),
                                        ("processed", certain(processed), expected_processed),
                                        ("dead-lettered", certain(dlq_payloads), expected_dead)):
                if got != expected:
                    problems.append(f"{name}: {len(got)} payloads, expected {len(expected)}; "
                                    f"unexpected {sorted(got - expected)[:5]}, missing {sorted(expected - got)[:5]}")
        elif not dlq_payloads <= {p for p in accepted_unique if always_fails(p)}:
            problems.append("the DLQs hold payloads that do not always fail")
        if dead - dlq_payloads:
            problems.append(f"{len(dead - dlq_payloads)} payloads printed as dead-lettered are not in a DLQ")
        if misplaced:
            problems.append(f"{len(misplaced)} messages in another group's DLQ, e.g. {misplaced[:5]}")
        if left:
            problems.append(f"{left} messages still in the source queues")
        if dev.returncode != 0:
            problems.append(f"cfwh dev exited {dev.returncode} on SIGTERM, not 0")
        if problems:
            raise SystemExit("soak: FAILED: " + "; ".join(problems))
        say("held: nothing lost, nothing applied twice or out of order, every superseded event stale, "
            "every failure retried or dead-lettered")
    finally:
        if dev.poll() is None:
            dev.kill()
        for moto in motos:
            moto.terminate()


if __name__ == "__main__":
    sys.exit(main())
