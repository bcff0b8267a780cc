#!/usr/bin/env python3
"""End to end under cargo-lambda's runtime emulator, against moto.

The real bootstrap binaries run under `cargo lambda watch`: ingest reads the webhook
secret and the required header's value from Secrets Manager, as deployed; a signed POST
carrying the header to the ingest Function URL path must land in the task queue (without
the header, or signed otherwise, it gets a 401), and invoking the `consume` bootstrap
(serving the task group, as the template's task consumer does) with that message as an
SQS event must process it (no batch item failure, a COMPLETED item in the idempotency
table), archive it in S3 and forward it to a local HTTP receiver, signed with the forward
secret; invoking it again must find the duplicate and deliver nothing more.

Needs AWS_ENDPOINT_URL (moto) and `cargo lambda` on PATH; `make test` provides both.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cfwh_groups, free_port, receiver, sayer, sign, stop, wait_for_port  # noqa: E402

say = sayer("e2e")
SECRET = "e2e-secret"
FORWARD_SECRET = "e2e-forward-secret"
HEADER = ("X-Studio-Token", "e2e-header-value")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUP = "task"


def setup(prefix, described):
    sqs = boto3.client("sqs")
    names = described["env"]
    env = {names["event_group"]: GROUP}
    for route in described["routes"]:
        dlq = sqs.create_queue(QueueName=route["dead_letter_queue"])["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(
            QueueName=route["queue"],
            Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": described["max_receives"]})},
        )["QueueUrl"]
        env[route["queue_url_var"]] = url
        if route["group"] == GROUP:
            env[names["dlq_url"]] = dlq
            group_url = url
    table = described["idempotency_table"]["name"]
    key = described["idempotency_table"]["partition_key"]
    boto3.client("dynamodb").create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
    )
    env[names["idempotency_table"]] = table
    return env, table, group_url


def post(url, body, timeout, signed=None, header=HEADER):
    signature = sign(SECRET, body if signed is None else signed)
    headers = {"Content-Type": "application/json", "X-CF-Event": "Task completed", "X-CF-Signature": signature}
    if header:
        headers[header[0]] = header[1]
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def sqs_event(message, queue_arn):
    attributes = {
        name: {"stringValue": value["StringValue"], "stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {"ApproximateReceiveCount": message["Attributes"].get("ApproximateReceiveCount", "1")},
                "messageAttributes": attributes,
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": os.environ.get("AWS_REGION", "us-east-1"),
            }
        ]
    }


def invoke(function, event, port):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(event, f)
    out = subprocess.run(
        ["cargo", "lambda", "invoke", function, "--data-file", f.name, "--invoke-address", "127.0.0.1", "--invoke-port", str(port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"e2e: cargo lambda invoke {function} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout)


def main():
    if "AWS_ENDPOINT_URL" not in os.environ:
        raise SystemExit("e2e: AWS_ENDPOINT_URL must name the moto_server (make test starts it)")
    prefix = f"e2e-{os.getpid()}"
    described = cfwh_groups(prefix)
    env, table, task_url = setup(prefix, described)
    names = described["env"]
    bucket = f"{prefix}-archive"
    boto3.client("s3").create_bucket(Bucket=bucket)
    server, forward_url, forwarded = receiver()
    env[names["destinations"]] = "archive,http"
    env[names["archive_bucket"]] = bucket
    env[names["archive_prefix"]] = "events"
    env[names["forward_url"]] = forward_url
    env[names["forward_secret"]] = FORWARD_SECRET
    key = described["idempotency_table"]["partition_key"]
    ingest, consumer = described["bootstraps"]["ingest"], described["bootstraps"]["consumer"]
    port = free_port()
    log_path = os.path.join(ROOT, "target", "e2e-watch.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log = open(log_path, "w")
    sm = boto3.client("secretsmanager")
    watch_env = dict(os.environ, RUST_LOG="info", **env)
    watch_env.pop(names["webhook_secret"], None)
    watch_env[names["webhook_secret_arn"]] = sm.create_secret(Name=f"{prefix}-webhook", SecretString=SECRET)["ARN"]
    watch_env[names["required_header_name"]] = HEADER[0]
    watch_env[names["required_header_value_arn"]] = sm.create_secret(
        Name=f"{prefix}-header", SecretString=HEADER[1] + "\n"
    )["ARN"]
    say(f"cargo lambda watch on 127.0.0.1:{port} (log: target/e2e-watch.log)")
    watch = subprocess.Popen(
        # The functions log at trace level (cargo-lambda itself at info): nothing secret
        # may reach their logs even then.
        ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(port), "--ignore-changes",
         "--env-var", "RUST_LOG=trace"],
        cwd=ROOT,
        env=watch_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, watch, 120, f"e2e: cargo lambda watch did not start; see {log_path}")

        with open(os.path.join(ROOT, "events", "task.json"), "rb") as f:
            body = re.sub(rb'"EventDatetimeUtc"\s*:\s*\d+', b'"EventDatetimeUtc":%d' % int(time.time() * 1000), f.read())
        say("POST to the ingest Function URL (the first request compiles ingest)")
        status, answer = post(f"http://127.0.0.1:{port}/lambda-url/{ingest}/", body, timeout=900)
        if status != 200 or json.loads(answer).get("status") != "accepted":
            raise SystemExit(f"e2e: ingest answered {status} {answer}; see {log_path}")
        tampered = body.replace(b'"task"', b'"task" ', 1)
        status, answer = post(f"http://127.0.0.1:{port}/lambda-url/{ingest}/", tampered, timeout=60, signed=body)
        if status != 401:
            raise SystemExit(f"e2e: a body changed after signing got {status} {answer}, expected 401")
        for header in [None, (HEADER[0], "guess")]:
            status, answer = post(f"http://127.0.0.1:{port}/lambda-url/{ingest}/", body, timeout=60, header=header)
            if status != 401:
                raise SystemExit(f"e2e: a delivery with the header {header} got {status} {answer}, expected 401")

        sqs = boto3.client("sqs")
        received = sqs.receive_message(
            QueueUrl=task_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"], WaitTimeSeconds=2
        ).get("Messages", [])
        if len(received) != 1 or received[0]["Body"].encode() != body:
            raise SystemExit(f"e2e: expected the exact signed bytes once in the task queue, found {received}")
        message = received[0]
        if message["MessageAttributes"][described["attributes"]["event_group"]]["StringValue"] != GROUP:
            raise SystemExit(f"e2e: wrong attributes {message['MessageAttributes']}")
        arn = sqs.get_queue_attributes(QueueUrl=task_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        event = sqs_event(message, arn)

        say(f"invoking {consumer} ({GROUP}) with that message as an SQS event (the first invocation compiles it)")
        first = invoke(consumer, event, port)
        if first.get("batchItemFailures") != []:
            raise SystemExit(f"e2e: {consumer} answered {first}")
        item = boto3.client("dynamodb").get_item(
            TableName=table, Key={key: {"S": f"{GROUP}#c02f0f73-1706-4973-9a4d-38007d6685e9"}}, ConsistentRead=True
        ).get("Item")
        state = described["idempotency_table"]["state"]
        if not item or item[state]["S"] != described["idempotency_table"]["completed"]:
            raise SystemExit(f"e2e: no COMPLETED idempotency item, found {item}")
        objects = boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
        if len(objects) != 1 or f"/{GROUP}/" not in objects[0]["Key"]:
            raise SystemExit(f"e2e: expected one archived object, found {objects}")
        archived = boto3.client("s3").get_object(Bucket=bucket, Key=objects[0]["Key"])
        if archived["Body"].read() != body or archived["Metadata"].get(described["archive"]["metadata"]["signature"]) != sign(SECRET, body):
            raise SystemExit(f"e2e: the archived object is not the body with its signature: {archived['Metadata']}")
        if len(forwarded) != 1 or forwarded[0] != (sign(FORWARD_SECRET, body), body):
            raise SystemExit(f"e2e: expected one forward of the exact bytes signed with the forward secret, got {forwarded}")
        second = invoke(consumer, event, port)
        if second.get("batchItemFailures") != []:
            raise SystemExit(f"e2e: the redelivery answered {second}")
        if len(forwarded) != 1:
            raise SystemExit(f"e2e: the duplicate was forwarded again: {len(forwarded)} forwards")
        with open(log_path) as f:
            if f'"{described["metrics"]["names"]["duplicates"]}":1.0' not in f.read().replace(" ", ""):
                raise SystemExit(f"e2e: the redelivery was not counted as a duplicate (EMF); see {log_path}")
        with open(log_path) as f:
            logged = f.read()
        secrets = {"the webhook secret": SECRET, "the forward secret": FORWARD_SECRET, "the header's value": HEADER[1],
                   "the delivery's signature": sign(SECRET, body), "the forward's signature": sign(FORWARD_SECRET, body)}
        leaked = [name for name, value in secrets.items() if value in logged]
        if leaked:
            raise SystemExit(f"e2e: at trace level the functions logged {', '.join(leaked)}; see {log_path}")
        say("ingest read the secret and the header's value from Secrets Manager: 401 without the header or with a wrong one")
        say(f"ingest → SQS → {consumer} ({GROUP}) → DynamoDB, S3, HTTP: processed, archived and forwarded once, then a duplicate")
        say("at trace level, no secret or signature in the functions' logs")
    finally:
        server.shutdown()
        stop(watch)


if __name__ == "__main__":
    sys.exit(main())
