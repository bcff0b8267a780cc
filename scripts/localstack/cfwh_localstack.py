"""LocalStack plugins for the deploy rehearsal (scripts/rehearse.py): what LocalStack would
otherwise need Docker or Java for, replaced so that it runs on a bare machine.

- DynamoDB (`PROVIDER_OVERRIDE_DYNAMODB=moto`): LocalStack's own DynamoDB provider, with the
  DynamoDB Local server it would download and start under Java replaced by the moto_server
  at `$CFWH_REHEARSAL_DYNAMODB` (the rehearsal starts one). The provider's request
  handling (namespacing by account and region, ARNs, TTL) is LocalStack's, unchanged.
- Lambda (`LAMBDA_RUNTIME_EXECUTOR=rehearsal`): a runtime executor that needs no container
  image (so CreateFunction completes without Docker) and runs each function's own
  `bootstrap`, from the code the stack deployed, as a process of this machine, serving it
  the Lambda Runtime API. The rehearsal deploys bootstraps built for this machine; the
  Function URL and the event source mappings of the stack invoke them as they would in AWS
  (with the message bodies the mappings pass kept byte for byte: `_keep_sqs_bodies`).

LocalStack finds both through the entry points of `cfwh_localstack-1.dist-info` beside
this file: the rehearsal puts this directory on its PYTHONPATH.
"""

import os
import queue
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

from localstack.services.lambda_.invocation.lambda_models import InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor
from localstack.services.plugins import aws_provider


class RehearsalExecutor(RuntimeExecutor):
    """Runs a function as Lambda would, without a container: the `bootstrap` of the function's
    own code (as deployed, unzipped by LocalStack) as a process of this machine, with the
    environment LocalStack gives the function (its variables, region, credentials) and the
    Lambda Runtime API served here on a free port of 127.0.0.1. LocalStack's Function URLs
    and event source mappings invoke it like any other executor."""

    def __init__(self, id, function_version):
        super().__init__(id, function_version)
        self.process = None
        self.server = None
        self.log_path = None
        self.invocations = queue.Queue()
        self.results = {}
        self.ready = threading.Event()
        self.init_error = None

    def start(self, env_vars):
        code = self.function_version.config.code
        if code is None:
            raise LambdaRuntimeException("the rehearsal runs zip-packaged functions only")
        code.prepare_for_execution()
        bootstrap = os.path.join(str(code.get_unzipped_code_location()), "bootstrap")
        if not os.access(bootstrap, os.X_OK):
            raise LambdaRuntimeException(f"no executable bootstrap in the code of {self.function_version.id.function_name}")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _runtime_api(self))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        env = {name: str(value) for name, value in env_vars.items()}
        env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{self.server.server_address[1]}"
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        logs = os.environ.get("CFWH_REHEARSAL_LOGS") or tempfile.gettempdir()
        os.makedirs(logs, exist_ok=True)
        self.log_path = os.path.join(logs, f"{self.function_version.id.function_name}-{self.id}.log")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([bootstrap], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=os.path.dirname(bootstrap))
        deadline = time.time() + 30
        while not self.ready.wait(0.05):
            if self.process.poll() is not None or self.init_error is not None or time.time() > deadline:
                self.stop()
                raise LambdaRuntimeException(
                    f"{self.function_version.id.function_name} did not start: {self.init_error or self.get_logs()[-2000:]}"
                )

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        for result in list(self.results.values()):
            result.set_exception(LambdaRuntimeException("the execution environment stopped"))

    def get_address(self):
        return "127.0.0.1"

    def get_endpoint_from_executor(self):
        return "127.0.0.1"

    def get_runtime_endpoint(self):
        return ""

    def invoke(self, payload):
        request_id = payload["invoke-id"]
        result = Future()
        self.results[request_id] = result
        self.invocations.put(payload)
        try:
            body, is_error = result.result(timeout=float(self.function_version.config.timeout) + 10)
        finally:
            self.results.pop(request_id, None)
        return InvocationResult(request_id=request_id, payload=body, is_error=is_error, logs=self.get_logs()[-4096:])

    def get_logs(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    @classmethod
    def prepare_version(cls, function_version):
        pass

    @classmethod
    def cleanup_version(cls, function_version):
        pass


def _runtime_api(executor):
    """The Lambda Runtime API (2018-06-01) for one execution environment."""
    prefix = "/2018-06-01/runtime"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body=b"", headers=()):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != f"{prefix}/invocation/next":
                return self.reply(404)
            executor.ready.set()
            payload = executor.invocations.get()
            timeout_ms = int(float(executor.function_version.config.timeout) * 1000)
            self.reply(200, payload["payload"].encode(), [
                ("Content-Type", "application/json"),
                ("Lambda-Runtime-Aws-Request-Id", payload["invoke-id"]),
                ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + timeout_ms)),
                ("Lambda-Runtime-Invoked-Function-Arn", payload["invoked-function-arn"]),
                ("Lambda-Runtime-Trace-Id", payload.get("trace-id") or ""),
            ])

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = self.path[len(prefix):].strip("/").split("/")
            if parts == ["init", "error"]:
                executor.init_error = body.decode(errors="replace")
                return self.reply(202)
            if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                result = executor.results.get(parts[1])
                if result is None:
                    return self.reply(400)
                result.set_result((body, parts[2] == "error"))
                return self.reply(202)
            self.reply(404)

    return Handler


class RehearsalExecutorPlugin(RuntimeExecutorPlugin):
    name = "rehearsal"

    def load(self, *args, **kwargs):
        _keep_sqs_bodies()
        return RehearsalExecutor


def _keep_sqs_bodies():
    """LocalStack's SQS poller parses each message body as JSON for its filter step and
    writes it back with json.dumps, so a function receives other bytes than were sent
    (`{"a":1}` becomes `{"a": 1}`). Lambda passes the body byte for byte, and the consumers
    forward and archive exactly those bytes, so the poller's events get their bodies back
    as received, after the filter."""
    from localstack.services.lambda_.event_source_mapping.pollers import sqs_poller

    if getattr(sqs_poller, "_cfwh_keeps_bodies", False):
        return
    received = {}
    transform = sqs_poller.transform_into_events

    def transform_into_events(messages):
        events = transform(messages)
        for event in events:
            received[event["messageId"]] = event["body"]
        return events

    add_source_metadata = sqs_poller.SqsPoller.add_source_metadata

    def add_source_metadata_to_received(self, events, *args, **kwargs):
        for event in events:
            if event.get("messageId") in received:
                event["body"] = received.pop(event["messageId"])
        return add_source_metadata(self, events, *args, **kwargs)

    sqs_poller.transform_into_events = transform_into_events
    sqs_poller.SqsPoller.add_source_metadata = add_source_metadata_to_received
    sqs_poller._cfwh_keeps_bodies = True


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto():
    from localstack.aws.forwarder import AwsRequestProxy
    from localstack.services.dynamodb.provider import DynamoDBProvider
    from localstack.services.dynamodb.server import DynamodbServer
    from localstack.services.plugins import Service
    from localstack.aws.forwarder import HttpFallbackDispatcher
    from localstack.utils.serving import Server

    class MotoServer(DynamodbServer):
        """DynamoDB Local's place, taken by a moto_server that is already running."""

        def __init__(self):
            address = urlparse(os.environ["CFWH_REHEARSAL_DYNAMODB"])
            Server.__init__(self, address.port, address.hostname)
            self.db_path = None
            self.heap_size = "0"
            self.delay_transient_statuses = self.optimize_db_before_startup = self.share_db = False
            self.cors = None
            self.proxy = AwsRequestProxy(self.url)

        def start_dynamodb(self):
            return True

        def stop_dynamodb(self):
            pass

    class Provider(DynamoDBProvider):
        @staticmethod
        def _new_dynamodb_server():
            return MotoServer()

    provider = Provider()
    return Service.for_provider(
        provider, dispatch_table_factory=lambda p: HttpFallbackDispatcher(p, p.get_forward_url)
    )


if __name__ == "__main__":
    # `python cfwh_localstack.py`: LocalStack's own entry point, with the one folder it
    # writes outside FILESYSTEM_ROOT whatever it is told (S3's object store, fixed at
    # /tmp/localstack-s3-storage) moved to $CFWH_REHEARSAL_S3_DIR, inside the rehearsal's.
    import runpy

    from localstack.services.s3 import provider as s3_provider

    s3_provider.DEFAULT_S3_TMP_DIR = os.environ["CFWH_REHEARSAL_S3_DIR"]
    runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
