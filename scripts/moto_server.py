#!/usr/bin/env python3
"""moto_server, with two behaviours made to match AWS under load.

SQS FIFO queues:

moto (5.2) holds back a message group while any message of it is "pending", including
messages whose visibility timeout has already ended. When several messages of one
group were received together and none was deleted, they come back out of order: the
earlier ones are skipped while a later one still counts as pending, and the last is
delivered first. SQS holds a group back only while a message of it is invisible, so
the earliest comes back first. The tests and the soak measure our ordering, not this
difference, so the group is computed here from the messages still invisible. And moto
forgets a deduplication ID as soon as its message is deleted, where SQS drops a repeat
for 5 minutes whatever became of the first; here it is remembered for 5 minutes (per
message group when the queue's `DeduplicationScope` says so).

DynamoDB transactions: moto (5.2) backs up every table a `TransactWriteItems` touches,
whole, before it runs, and on a cancelled transaction puts the whole backup back. That
costs time and memory in the size of the table (gigabytes in the soak), and, with
requests served on several threads, copying a table another request is writing fails
(a 500), while putting a backup back undoes the other requests' writes made meanwhile.
Here a transaction backs up only the items it touches, and puts only them back; it
runs alone, and so do single-item reads and writes.

Usage: the same arguments as moto_server.
"""

import copy
import sys
import threading
import time
import types

from moto.dynamodb import models as dynamodb
from moto.server import main
from moto.sqs import models as sqs


def _pending_message_groups(queue):
    return {m.group_id for m in queue.pending_messages if m.group_id is not None and not m.visible}


sqs.Queue.pending_message_groups = property(_pending_message_groups)

DEDUPLICATION_SECONDS = 300
_add_message = sqs.Queue.add_message


def _add_message_once(queue, message):
    if queue.fifo_queue and message.deduplication_id:
        seen = queue.__dict__.setdefault("_deduplication_ids", {})
        now = time.time()
        if len(seen) > 10_000:
            for key in [k for k, at in seen.items() if now - at >= DEDUPLICATION_SECONDS]:
                del seen[key]
        scope = message.group_id if getattr(queue, "deduplication_scope", "queue") == "messageGroup" else None
        key = (scope, message.deduplication_id)
        if now - seen.get(key, float("-inf")) < DEDUPLICATION_SECONDS:
            return
        seen[key] = now
    _add_message(queue, message)


sqs.Queue.add_message = _add_message_once

_LOCK = threading.RLock()


def _deepcopy_but_tables(value, memo=None):
    # The transaction's own backup of whole tables becomes a no-op; ours is below.
    return value if isinstance(value, dynamodb.Table) else copy.deepcopy(value, memo)


dynamodb.copy = types.SimpleNamespace(deepcopy=_deepcopy_but_tables, copy=copy.copy)


def _touched(backend, transact_items):
    saved = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = backend.get_table(op["TableName"])
        key = op.get("Key")
        if key is None:
            key = {name: op["Item"][name] for name in (table.hash_key_attr, table.range_key_attr) if name}
        hash_key, range_key = backend.get_keys_value(table, key)
        saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
    return saved


def _restore(saved):
    for table, hash_key, range_key, item in reversed(saved):
        if item is None:
            table.delete_item(hash_key, range_key)
        elif range_key is not None:
            table.items[hash_key][range_key] = item
        else:
            table.items[hash_key] = item


_transact_write_items = dynamodb.DynamoDBBackend.transact_write_items


def _transact(self, transact_items):
    with _LOCK:
        try:
            saved = _touched(self, transact_items)
        except Exception:  # noqa: BLE001 - moto's own call reports a malformed request
            saved = []
        try:
            return _transact_write_items(self, transact_items)
        except Exception:
            _restore(saved)
            raise


dynamodb.DynamoDBBackend.transact_write_items = _transact


def _serialised(method):
    def call(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)
    return call


for _name in ("get_item", "put_item", "update_item", "delete_item"):
    setattr(dynamodb.DynamoDBBackend, _name, _serialised(getattr(dynamodb.DynamoDBBackend, _name)))

if __name__ == "__main__":
    sys.exit(main())
