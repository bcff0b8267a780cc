#!/usr/bin/env python3
"""moto_server, with one behaviour of SQS FIFO queues made to match SQS.

moto (5.2) holds back a message group while any message of it is "pending", including
messages whose visibility timeout has already ended. When several messages of one
group were received together and none was deleted, they come back out of order: the
earlier ones are skipped while a later one still counts as pending, and the last is
delivered first. SQS holds a group back only while a message of it is invisible, so
the earliest comes back first. The tests and the soak measure our ordering, not this
difference, so the group is computed here from the messages still invisible.

Usage: the same arguments as moto_server.
"""

import sys

from moto.server import main
from moto.sqs import models


def _pending_message_groups(queue):
    return {m.group_id for m in queue.pending_messages if m.group_id is not None and not m.visible}


models.Queue.pending_message_groups = property(_pending_message_groups)

if __name__ == "__main__":
    sys.exit(main())
