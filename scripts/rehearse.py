#!/usr/bin/env python3
"""The deploy rehearsal (`make rehearse`, part of `make test`): the stack of template.yaml
created, updated and deleted in LocalStack, through change sets as `sam deploy` does, and
the real bootstraps run against it. No AWS account, no Docker.

LocalStack (its own venv, .venv-localstack, from scripts/localstack.lock) listens on a free
port of 127.0.0.1. Two plugins of ours (scripts/localstack/) stand in for what it would run
in Docker or Java: its DynamoDB provider forwards to a moto_server started here instead of
DynamoDB Local, and its Lambda service runs each function's own `bootstrap` from the code
the stack deployed, as a process of this machine. The bootstraps deployed are built for
this machine (`cargo build`), as the end-to-end test builds them; the template is the
repository's, only its CodeUri pointed at them in the deploy bucket.

Three deployments, each created, checked, updated and deleted:

- defaults: FIFO queues, `latest` ordering, no destination;
- all: every optional feature on (EventBridge and its schema registry, the HTTP forward,
  the S3 archive, a required header, the alarm topic and its e-mail, the dashboard);
  a signed event of each of the seven groups is POSTed to the stack's Function URL and
  must be processed by its group's consumer, invoked by the stack's own event source
  mapping: claimed in the stack's table, put on its bus, archived in its bucket and
  forwarded to a receiver here;
- standard: standard queues.

Every resource must reach CREATE_COMPLETE (one line per resource that fails, with the
reason); the updates (a longer consumer timeout, then a destination switched on or
changed) must keep the physical IDs of the queues, the table and the bucket, and a new
stack with the last parameters must name them the same (LocalStack itself never replaces
a queue); the delete must leave nothing but what the template retains and the deploy bucket.

The rehearsal then tests itself (BROKEN): copies of the template that cfn-lint and
`sam validate --lint` pass, each of which must fail here where it says: an ingest that
names a queue the stack does not create, an update that replaces a queue, a queue that
cannot be created.

Usage: scripts/rehearse.py [--only defaults,all,standard|none] [--no-self-test] [--keep-logs]
Run by `make rehearse` (which builds the bootstraps and installs the tools first).
"""

import argparse
import http.client
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cfwh_groups, free_port, receiver, sayer, sign, stop  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGION = "us-east-1"
say = sayer("rehearse")
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
HEADER = "X-Studio-Token"
# The resources whose physical ID an update must keep: replacing one loses what it holds.
KEPT = ("AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::S3::Bucket")


class Failed(Exception):
    """The rehearsal found something a deploy to AWS would meet: one line per finding."""


def boto(service, endpoint):
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


# --- the servers ------------------------------------------------------------------------

def start_moto(workdir):
    port = free_port()
    log = open(os.path.join(workdir, "moto.log"), "w")
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "moto_server.py"), "-H", "127.0.0.1",
                                "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/moto-api/data.json", process, 30, "moto_server did not start")
    return process, f"http://127.0.0.1:{port}"


def start_localstack(python, workdir, dynamodb):
    """LocalStack in host mode on a free port of 127.0.0.1: hypercorn (its default server
    listens on every address whatever it is told), path-style queue URLs (the default names
    need DNS), `localhost` as its host name (with 127.0.0.1, Function URL hosts end in
    numeric labels, `<id>.lambda-url.us-east-1.127.0.0.1`, which lambda_http's URL parser
    rejects with a panic), our plugins for DynamoDB and Lambda, no telemetry, no downloads."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        OVERRIDE_IN_DOCKER="0", GATEWAY_SERVER="hypercorn", GATEWAY_LISTEN=f"127.0.0.1:{port}",
        LOCALSTACK_HOST=f"localhost:{port}", FILESYSTEM_ROOT=os.path.join(workdir, "localstack"),
        DISABLE_EVENTS="1", SKIP_SSL_CERT_DOWNLOAD="1", DNS_ADDRESS="0", SQS_ENDPOINT_STRATEGY="path",
        PROVIDER_OVERRIDE_DYNAMODB="moto", CFWH_REHEARSAL_DYNAMODB=dynamodb, LAMBDA_RUNTIME_EXECUTOR="rehearsal",
        CFWH_REHEARSAL_LOGS=os.path.join(workdir, "functions"), TMPDIR=os.path.join(workdir, "tmp"),
        PYTHONPATH=os.path.join(ROOT, "scripts", "localstack"), LOCALSTACK_CLI="0",
        CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES="1", CFWH_REHEARSAL_S3_DIR=os.path.join(workdir, "s3"),
    )
    os.makedirs(env["TMPDIR"], exist_ok=True)
    log = open(os.path.join(workdir, "localstack.log"), "w")
    process = subprocess.Popen([python, os.path.join(ROOT, "scripts", "localstack", "cfwh_localstack.py")], env=env, stdout=log,
                               stderr=subprocess.STDOUT, cwd=workdir)
    wait_http(f"http://127.0.0.1:{port}/_localstack/health", process, 120,
              f"LocalStack did not start; see {log.name}")
    return process, f"http://127.0.0.1:{port}"


def wait_http(url, process, seconds, failure):
    deadline = time.time() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                raise SystemExit(f"rehearse: {failure}")
            time.sleep(0.2)


# --- the deploy -------------------------------------------------------------------------

def package(template_path, endpoint, bucket, bootstraps):
    """What `sam deploy --s3-bucket` does: each CodeUri's code zipped into the deploy bucket,
    the template rewritten to point at it and uploaded there (it is larger than
    CloudFormation's 51,200-byte inline limit). Returns the template's URL."""
    s3 = boto("s3", endpoint)
    with open(template_path) as f:
        template = f.read()
    for name, path in bootstraps.items():
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w", zipfile.ZIP_DEFLATED) as z:
            info = zipfile.ZipInfo("bootstrap")
            info.external_attr = 0o755 << 16
            with open(path, "rb") as f:
                z.writestr(info, f.read())
        s3.put_object(Bucket=bucket, Key=f"{name}.zip", Body=code.getvalue())
        template, count = re.subn(rf"CodeUri: target/lambda/{name}/\s*$", f"CodeUri: s3://{bucket}/{name}.zip",
                                  template, flags=re.M)
        if not count:
            raise Failed(f"the template has no CodeUri target/lambda/{name}/")
    key = f"template-{uuid.uuid4().hex[:8]}.yaml"
    s3.put_object(Bucket=bucket, Key=key, Body=template.encode())
    return f"https://s3.{REGION}.amazonaws.com/{bucket}/{key}"


def deploy(cfn, stack, template_url, parameters, create):
    """A change set, then its execution, as `sam deploy` does; raises Failed with one line
    per resource that failed."""
    kind = "CREATE" if create else "UPDATE"
    name = f"rehearsal-{uuid.uuid4().hex[:8]}"
    cfn.create_change_set(
        StackName=stack, ChangeSetName=name, ChangeSetType=kind, TemplateURL=template_url,
        Capabilities=CAPABILITIES,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    deadline = time.time() + 300
    while True:
        change_set = cfn.describe_change_set(StackName=stack, ChangeSetName=name)
        if change_set["Status"] in ("CREATE_COMPLETE", "FAILED"):
            break
        if time.time() > deadline:
            raise Failed(f"{stack}: the {kind} change set was still {change_set['Status']} after 300 s")
        time.sleep(0.5)
    if change_set["Status"] == "FAILED":
        raise Failed(f"{stack}: the {kind} change set failed: {change_set.get('StatusReason')}")
    cfn.execute_change_set(StackName=stack, ChangeSetName=name)
    status = wait_stack(cfn, stack)
    if status != f"{kind}_COMPLETE":
        raise Failed(failures(cfn, stack, f"{stack}: {kind} ended {status}"))


def wait_stack(cfn, stack, seconds=600):
    deadline = time.time() + seconds
    while True:
        try:
            status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        except cfn.exceptions.ClientError as e:
            if "does not exist" in str(e):
                return "DELETE_COMPLETE"
            raise
        if not status.endswith("_IN_PROGRESS"):
            return status
        if time.time() > deadline:
            return f"{status} after {seconds} s"
        time.sleep(1)


def failures(cfn, stack, headline):
    lines = [headline]
    for event in cfn.describe_stack_events(StackName=stack)["StackEvents"]:
        if event["ResourceStatus"].endswith("_FAILED") and event["LogicalResourceId"] != stack:
            lines.append(f"  {event['LogicalResourceId']} ({event['ResourceType']}): "
                         f"{event['ResourceStatus']}: {event.get('ResourceStatusReason', '')}")
    return "\n".join(lines)


def resources(cfn, stack):
    found, token = [], None
    while True:
        page = cfn.list_stack_resources(StackName=stack, **({"NextToken": token} if token else {}))
        found += page["StackResourceSummaries"]
        token = page.get("NextToken")
        if not token:
            return found


def check_created(cfn, stack):
    """Every resource CREATE_COMPLETE (or UPDATE_COMPLETE after an update); the count."""
    listed = resources(cfn, stack)
    bad = [r for r in listed if r["ResourceStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE")]
    if bad or not listed:
        raise Failed("\n".join([f"{stack}: {len(bad)} of {len(listed)} resources not created"] + [
            f"  {r['LogicalResourceId']} ({r['ResourceType']}): {r['ResourceStatus']}: {r.get('ResourceStatusReason', '')}"
            for r in bad]))
    return listed


# Types LocalStack's community edition accepts in a stack (CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES)
# without creating anything: the rehearsal counts them apart; the linters and checkov cover them.
NOT_EMULATED = ("AWS::CloudWatch::Dashboard", "AWS::EventSchemas::Registry", "AWS::EventSchemas::Schema")


def accepted_only(listed):
    counts = {}
    for r in listed:
        if r["ResourceType"] in NOT_EMULATED:
            counts[r["ResourceType"]] = counts.get(r["ResourceType"], 0) + 1
    return counts


def inventory(endpoint):
    """Every named thing a stack of ours can leave behind, per kind."""
    def pages(client, method, key, field, **kwargs):
        names, paginator = set(), client.get_paginator(method)
        for page in paginator.paginate(**kwargs):
            names |= {field(item) for item in page.get(key, [])}
        return names

    lam, events, cw, iam = (boto(name, endpoint) for name in ("lambda", "events", "cloudwatch", "iam"))
    return {
        "function": pages(lam, "list_functions", "Functions", lambda f: f["FunctionName"]),
        "event source mapping": pages(lam, "list_event_source_mappings", "EventSourceMappings", lambda m: m["UUID"]),
        "queue": set(boto("sqs", endpoint).list_queues().get("QueueUrls", [])),
        "table": set(boto("dynamodb", endpoint).list_tables()["TableNames"]),
        "secret": pages(boto("secretsmanager", endpoint), "list_secrets", "SecretList", lambda s: s["Name"]),
        "bucket": {b["Name"] for b in boto("s3", endpoint).list_buckets()["Buckets"]},
        "event bus": {b["Name"] for b in events.list_event_buses()["EventBuses"]},
        "rule": {r["Name"] for r in events.list_rules()["Rules"]},
        "topic": pages(boto("sns", endpoint), "list_topics", "Topics", lambda t: t["TopicArn"]),
        "alarm": pages(cw, "describe_alarms", "MetricAlarms", lambda a: a["AlarmName"]),
        "dashboard": pages(cw, "list_dashboards", "DashboardEntries", lambda d: d["DashboardName"]),
        "log group": pages(boto("logs", endpoint), "describe_log_groups", "logGroups", lambda g: g["logGroupName"]),
        "role": pages(iam, "list_roles", "Roles", lambda r: r["RoleName"]),
        "policy": pages(iam, "list_policies", "Policies", lambda p: p["PolicyName"], Scope="Local"),
    }


def identities(endpoint, stack, listed):
    """What CloudFormation cannot change in place, per queue, table and bucket (their
    create-only properties as the resources show them), with the stack's name taken out:
    LocalStack 2026.3 never replaces a queue on update (it keeps the old name and reports
    Replacement: False), so a replacing update shows here, against a fresh stack, instead."""
    sqs, ddb = boto("sqs", endpoint), boto("dynamodb", endpoint)
    found = {}
    for r in listed:
        physical, kind = r["PhysicalResourceId"], r["ResourceType"]
        if kind == "AWS::SQS::Queue":
            # A standard queue has no FifoQueue attribute at all.
            attributes = sqs.get_queue_attributes(QueueUrl=physical, AttributeNames=["FifoQueue"]).get("Attributes", {})
            fifo = attributes.get("FifoQueue", "false")
            found[r["LogicalResourceId"]] = (physical.rsplit("/", 1)[1].replace(stack, "<stack>"), f"FifoQueue={fifo}")
        elif kind == "AWS::DynamoDB::Table":
            table = ddb.describe_table(TableName=physical)["Table"]
            keys = ",".join(f"{k['AttributeName']}:{k['KeyType']}" for k in table["KeySchema"])
            found[r["LogicalResourceId"]] = (physical.replace(stack, "<stack>"), f"KeySchema={keys}")
        elif kind == "AWS::S3::Bucket":
            # A name CloudFormation generates (<stack>-<logical id>-<random>) is no property.
            generated = re.fullmatch(rf"{re.escape(stack.lower())}-{r['LogicalResourceId'].lower()}-[a-z0-9]+", physical)
            found[r["LogicalResourceId"]] = ("<generated>" if generated else physical.replace(stack.lower(), "<stack>"),)
    return found


def retained(template_path, listed):
    """The physical IDs of the resources the template keeps on delete (DeletionPolicy: Retain)."""
    import yaml

    class Loader(yaml.SafeLoader):
        """YAML with CloudFormation's short tags (!Ref, !If, ...) read as plain values."""

    Loader.add_multi_constructor("!", lambda loader, tag, node: None)
    with open(template_path) as f:
        names = {name for name, resource in yaml.load(f, Loader=Loader)["Resources"].items()
                 if resource.get("DeletionPolicy") == "Retain"}
    return {r["PhysicalResourceId"] for r in listed if r["LogicalResourceId"] in names}


# --- the bootstraps ---------------------------------------------------------------------

def function_url_post(endpoint, url, body, headers):
    """POST to a Function URL of LocalStack's: its host names the function, so the request
    goes to LocalStack's port with that Host header (no DNS needed). LocalStack takes the
    event's sourceIp from a Remote-Addr header that only its default server (not hypercorn)
    adds; it is given here as that server would, so that the event carries a source address
    as Lambda's always does."""
    parsed = urllib.parse.urlparse(url)
    port = urllib.parse.urlparse(endpoint).port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("POST", parsed.path or "/", body=body,
                       headers={"Host": parsed.netloc, "Content-Type": "application/json",
                                "Remote-Addr": "127.0.0.1", **headers})
    response = connection.getresponse()
    return response.status, response.read().decode(errors="replace")


def events_of_every_group():
    """events/<group>.json, each with a new PayloadId, stamped now, as the exact bytes to sign."""
    now = int(time.time() * 1000)
    bodies = {}
    for name in sorted(os.listdir(os.path.join(ROOT, "events"))):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(ROOT, "events", name), "rb") as f:
            body = f.read()
        body = re.sub(rb'"EventDatetimeUtc"\s*:\s*\d+', b'"EventDatetimeUtc":%d' % now, body)
        payload_id = str(uuid.uuid4())
        body = re.sub(rb'"PayloadId"\s*:\s*"[^"]*"', b'"PayloadId":"%s"' % payload_id.encode(), body)
        bodies[name[:-len(".json")]] = (payload_id, body)
    return bodies


def outputs(cfn, stack):
    return {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])}


def send_every_group(endpoint, stack, described, forwarded, secrets_of):
    """A signed event of each group through the stack's Function URL; each must be processed
    by its group's consumer (invoked by the stack's event source mapping) with the stack's
    table, bus, bucket and the forward."""
    cfn, sqs, events = boto("cloudformation", endpoint), boto("sqs", endpoint), boto("events", endpoint)
    out = outputs(cfn, stack)
    webhook_secret, header_value = secrets_of(out)
    bus = out["DestinationEventBus"]
    # What reaches the bus is caught by a rule of the rehearsal's into a queue of its own.
    capture = sqs.create_queue(QueueName=f"{stack}-capture")["QueueUrl"]
    capture_arn = sqs.get_queue_attributes(QueueUrl=capture, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"{stack}-capture"
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps({"source": [{"prefix": ""}]}))
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "capture", "Arn": capture_arn}])
    try:
        bodies = events_of_every_group()
        groups = set(described["groups"])
        if set(bodies) != groups:
            raise Failed(f"events/ holds {sorted(bodies)}, the groups are {sorted(groups)}")
        for group, (payload_id, body) in sorted(bodies.items()):
            headers = {"X-CF-Signature": sign(webhook_secret, body), HEADER: header_value}
            status, answer = function_url_post(endpoint, out["WebhookUrl"], body, headers)
            if status != 200:
                raise Failed(f"{group}: ingest answered {status} {answer[:300]}")
        status, answer = function_url_post(endpoint, out["WebhookUrl"], bodies["task"][1],
                                           {"X-CF-Signature": sign("not-the-secret", bodies["task"][1]), HEADER: header_value})
        if status != 401:
            raise Failed(f"a delivery signed with another secret got {status} {answer[:300]}, expected 401")
        wait_processed(endpoint, out, described, bodies, forwarded, capture)
    finally:
        events.remove_targets(Rule=rule, EventBusName=bus, Ids=["capture"])
        events.delete_rule(Name=rule, EventBusName=bus)
        sqs.delete_queue(QueueUrl=capture)
    return len(bodies)


def wait_processed(endpoint, out, described, bodies, forwarded, capture):
    ddb, s3, sqs = boto("dynamodb", endpoint), boto("s3", endpoint), boto("sqs", endpoint)
    table = described["idempotency_table"]
    bucket = out["DestinationArchiveBucket"]
    on_bus, missing = {}, {}
    deadline = time.time() + 120
    while True:
        for message in sqs.receive_message(QueueUrl=capture, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            entry = json.loads(message["Body"])
            on_bus[entry.get("detail", {}).get("PayloadId")] = entry
            sqs.delete_message(QueueUrl=capture, ReceiptHandle=message["ReceiptHandle"])
        archived = " ".join(o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                            for o in page.get("Contents", []))
        forwarded_bodies = {body for _, body in forwarded}
        missing = {}
        for group, (payload_id, body) in bodies.items():
            item = ddb.get_item(TableName=out["IdempotencyTableName"], ConsistentRead=True,
                                Key={table["partition_key"]: {"S": f"{group}#{payload_id}"}}).get("Item")
            lacks = []
            if not item or item[table["state"]]["S"] != table["completed"]:
                lacks.append(f"no {table['completed']} claim in the table (found {item and item[table['state']]['S']})")
            if payload_id not in on_bus:
                lacks.append("not on the event bus")
            if payload_id not in archived:
                lacks.append("not archived")
            if body not in forwarded_bodies:
                lacks.append("not forwarded as sent" if any(payload_id.encode() in b for b in forwarded_bodies)
                             else "not forwarded")
            if lacks:
                missing[group] = lacks
        if not missing:
            return
        if time.time() > deadline:
            raise Failed("\n".join(["events not processed within 120 s:"] + [
                f"  {group}: {', '.join(lacks)}" for group, lacks in sorted(missing.items())]
                + [f"  (forwarded: {len(forwarded)} bodies; on the bus: {len(on_bus)})"]))


# --- the rehearsal ----------------------------------------------------------------------

def rehearse(endpoint, template_path, stack, parameters, updates, bucket, bootstraps, send=None):
    """Create, check, (send,) update, check the kept IDs, delete, check what is left."""
    cfn = boto("cloudformation", endpoint)
    before = inventory(endpoint)
    url = package(template_path, endpoint, bucket, bootstraps)
    started = time.time()
    try:
        deploy(cfn, stack, url, parameters, create=True)
        created = check_created(cfn, stack)
        accepted = accepted_only(created)
        say(f"{stack}: {len(created)} of {len(created)} resources created ({time.time() - started:.0f} s)"
            + (f"; {sum(accepted.values())} of them only accepted, as LocalStack does not emulate their types: "
               + ", ".join(f"{n} {t}" for t, n in sorted(accepted.items())) if accepted else ""))
        if send:
            sent = send(stack)
            say(f"{stack}: {sent} signed events, one per group, through the Function URL to their consumers: "
                "claimed, on the bus, archived, forwarded")
        kept = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in created if r["ResourceType"] in KEPT}
        # One change per update: LocalStack 2026.3 fails some updates that change two things
        # at once (the timeout and a destination together: it created the job queue again,
        # QueueAlreadyExists).
        for change in updates:
            parameters = {**parameters, **change}
            deploy(cfn, stack, url, parameters, create=False)
            updated = check_created(cfn, stack)
            after = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in updated if r["ResourceType"] in KEPT}
            replaced = [f"  {name}: {kept[name]} became {after.get(name)}" for name in kept if after.get(name) != kept[name]]
            if replaced:
                raise Failed("\n".join([f"{stack}: the update {change} replaced what it should only modify:"] + replaced))
            say(f"{stack}: updated ({', '.join(f'{k}={v}' for k, v in change.items())}); "
                f"its {len(kept)} queues, tables and buckets kept their physical IDs")
        keep = retained(template_path, updated)
        # The same template and parameters as a new stack: whatever it names otherwise, the
        # updates would have replaced in AWS.
        fresh = f"{stack}-fresh"
        deploy(cfn, fresh, url, parameters, create=True)
        try:
            fresh_listed = check_created(cfn, fresh)
            keep |= retained(template_path, fresh_listed)
            now, then = identities(endpoint, stack, updated), identities(endpoint, fresh, fresh_listed)
            differs = [f"  {name}: {' '.join(now[name])}, but created anew: {' '.join(then.get(name, ('absent',)))}"
                       for name in sorted(now) if now[name] != then.get(name)]
            if differs:
                raise Failed("\n".join([f"{stack}: the updates {updates} would replace in AWS what they should only modify "
                                        "(a create-only property changes):"] + differs))
        finally:
            teardown(cfn, fresh)
        say(f"{stack}: a new stack with the last parameters names its {len(now)} queues, tables and buckets the same: "
            "no update replaced one")
    except Exception:
        teardown(cfn, stack)
        raise
    cfn.delete_stack(StackName=stack)
    status = wait_stack(cfn, stack)
    if status != "DELETE_COMPLETE":
        raise Failed(failures(cfn, stack, f"{stack}: delete ended {status}"))
    left = inventory(endpoint)
    leftovers = [f"  {kind} {name}" for kind, names in left.items() for name in sorted(names - before[kind])
                 if name not in keep]
    if leftovers:
        raise Failed("\n".join([f"{stack}: the delete left behind:"] + leftovers))
    say(f"{stack}: deleted; nothing left but what the template retains ({len(keep)}) and the deploy bucket "
        f"({time.time() - started:.0f} s in all)")


def teardown(cfn, stack):
    try:
        cfn.delete_stack(StackName=stack)
        wait_stack(cfn, stack, 120)
    except Exception:  # noqa: BLE001 (best effort after a failure already reported)
        pass


def combinations(forward_url):
    """(name, parameters, updates) of each deployment: the updates are applied one after another."""
    everything = {
        "EventBridgeGroups": "all", "ForwardGroups": "all", "ForwardUrl": forward_url, "ArchiveGroups": "all",
        "RequiredHeaderName": HEADER, "AlarmEmail": "studio-ops@example.com", "DashboardEnabled": "true",
        "SchemaRegistryEnabled": "true",
    }
    return [
        ("defaults", {}, [{"ConsumerTimeout": "120"}, {"ForwardGroups": "all", "ForwardUrl": forward_url}]),
        ("all", everything, [{"ConsumerTimeout": "120"}, {"EventBridgeGroups": "task,job"}]),
        ("standard", {"QueueType": "standard"}, [{"ConsumerTimeout": "300"}, {"ForwardGroups": "task,job",
                                                                               "ForwardUrl": forward_url}]),
    ]


# The rehearsal's own tests: copies of the template, each broken in a way cfn-lint and
# `sam validate --lint` pass, each of which must fail the rehearsal where it says.
# (what is broken, the deployment it is rehearsed as, the change, the failure expected)
BROKEN = [
    ("ingest names a task queue the stack does not create", "all",
     r"^(          CF_QUEUE_URL_TASK: )!Ref TaskQueue$",
     r"\1!Sub 'https://sqs.${AWS::Region}.amazonaws.com/${AWS::AccountId}/${AWS::StackName}-tasks'",
     "task: ingest answered 503"),
    ("the job queue's name follows ConsumerTimeout, so changing the timeout replaces the queue", "defaults",
     r"^(      - \$\{AWS::StackName\}-job)(\$\{QueueSuffix\})$", r"\1-${ConsumerTimeout}s\2",
     "would replace in AWS what they should only modify (a create-only property changes):\n  JobQueue: "),
    ("the job queue is FIFO but its name ends in -fifo", "defaults",
     r"^(      - \$\{AWS::StackName\}-job\$\{QueueSuffix\}\n      - QueueSuffix: !If\n        - Fifo\n        - )\.fifo$",
     r"\1-fifo", "  JobQueue (AWS::SQS::Queue): CREATE_FAILED"),
]


def self_test(endpoint, workdir, bucket, bootstraps, forward_url, send):
    with open(os.path.join(ROOT, "template.yaml")) as f:
        template = f.read()
    deployments = {name: (parameters, updates) for name, parameters, updates in combinations(forward_url)}
    for number, (what, deployment, pattern, replacement, expected) in enumerate(BROKEN, 1):
        broken, count = re.subn(pattern, replacement, template, flags=re.M)
        if count != 1:
            raise Failed(f"self-test {number}: the template no longer has the line to break ({pattern})")
        path = os.path.join(workdir, f"template-broken-{number}.yaml")
        with open(path, "w") as f:
            f.write(broken)
        for command in (["cfn-lint", path], ["sam", "validate", "--lint", "--template-file", path, "--region", REGION]):
            result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                                    env=dict(os.environ, SAM_CLI_TELEMETRY="0"))
            if result.returncode != 0:
                raise Failed(f"self-test {number}: {command[0]} refuses the copy where {what}, so it tests nothing "
                             f"here:\n{result.stdout}{result.stderr}")
        parameters, updates = deployments[deployment]
        try:
            rehearse(endpoint, path, f"cfwh-broken-{number}", parameters, updates, bucket, bootstraps,
                     send if deployment == "all" else None)
        except Failed as e:
            if expected not in str(e):
                raise Failed(f"self-test {number}: the copy where {what} failed, but not with {expected!r}:\n{e}")
            found = next(line.strip() for line in str(e).splitlines() if expected.splitlines()[-1].strip() in line)
            say(f"self-test {number}: where {what}, cfn-lint and sam validate --lint pass; the rehearsal fails: {found}")
            continue
        raise Failed(f"self-test {number}: the rehearsal passed a copy of the template where {what}")


def main():
    global botocore
    import botocore.exceptions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="defaults,all,standard",
                        help="the deployments to rehearse, comma-separated (none: the self-test alone)")
    parser.add_argument("--no-self-test", action="store_true", help="skip the broken copy of the template")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work folder (logs) even when all pass")
    parser.add_argument("--localstack-python", default=os.path.join(ROOT, ".venv-localstack", "bin", "python"))
    parser.add_argument("--bootstraps", default=os.path.join(ROOT, "target", "debug"),
                        help="where the ingest and consume binaries built for this machine are")
    args = parser.parse_args()
    bootstraps = {"ingest": os.path.join(args.bootstraps, "ingest"), "consume": os.path.join(args.bootstraps, "consume")}
    for path in [*bootstraps.values(), os.path.join(args.bootstraps, "cfwh")]:
        if not os.access(path, os.X_OK):
            raise SystemExit(f"rehearse: {path} is missing: cargo build --workspace --all-features --bin ingest --bin consume --bin cfwh")
    workdir = tempfile.mkdtemp(prefix="rehearse-", dir=os.path.join(ROOT, "target"))
    started = time.time()
    moto = localstack = None
    server, forward_url, forwarded = receiver()
    try:
        moto, dynamodb = start_moto(workdir)
        localstack, endpoint = start_localstack(args.localstack_python, workdir, dynamodb)
        say(f"LocalStack on {endpoint} (DynamoDB from moto on {dynamodb}; log: {os.path.relpath(workdir, ROOT)}/) "
            f"ready in {time.time() - started:.0f} s")
        bucket = "cfwh-rehearsal-deploy"
        boto("s3", endpoint).create_bucket(Bucket=bucket)
        described = cfwh_groups(cfwh=os.path.join(args.bootstraps, "cfwh"))
        secrets = boto("secretsmanager", endpoint)

        def secrets_of(out):
            return (secrets.get_secret_value(SecretId=out["WebhookSecretArn"])["SecretString"],
                    secrets.get_secret_value(SecretId=out["RequiredHeaderSecretArn"])["SecretString"].strip())

        def send(stack):
            forwarded.clear()
            return send_every_group(endpoint, stack, described, forwarded, secrets_of)

        wanted = args.only.split(",")
        for name, parameters, updates in combinations(forward_url):
            if name in wanted:
                rehearse(endpoint, os.path.join(ROOT, "template.yaml"), f"cfwh-{name}", parameters, updates, bucket,
                         bootstraps, send if name == "all" else None)
        if not args.no_self_test:
            self_test(endpoint, workdir, bucket, bootstraps, forward_url, send)
    except Failed as e:
        print(f"rehearse: FAILED\n{e}\n(logs: {workdir})", file=sys.stderr)
        return 1
    except botocore.exceptions.ClientError as e:
        print(f"rehearse: FAILED: LocalStack answered {e}\n(logs: {workdir})", file=sys.stderr)
        return 1
    finally:
        server.shutdown()
        for process in (localstack, moto):
            if process:
                stop(process)
    say(f"passed in {time.time() - started:.0f} s")
    if not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
