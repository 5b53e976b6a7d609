"""moto's server, with its FIFO receive fixed so that it keeps the promises SQS keeps.

1. One receive pass at a time. moto serves requests on threads and checks and marks a group's in-flight state
   without a lock, so two concurrent receives can both be handed messages of one group (plain moto did it 9
   times in 60 rounds of 4 concurrent receives; tests/integration/test_emulators.py checks it never happens).
2. Every in-flight message whose visibility has expired stops being in flight all at once, judged at one
   instant per pass. moto drops them one by one while iterating, so when several messages of a group expire
   together (a consumer that held them died, or a receive response was lost) it hands out the *last* first.
3. A long poll is a series of short passes until something is handed out or the wait is over, each pass
   seeing the queue as it is then. moto's own long poll decides which groups are locked when it starts, so a
   group unlocked by a delete during the poll stays locked for the rest of its wait (up to 20 s); and a lock
   held across a whole long poll (fix 1 done naively) would stall every other receive behind it.

4. One call that touches a queue's messages at a time. moto's ``Queue.delete_message`` builds a new message
   list from the old one and then assigns it, without a lock (moto 5.2.6, moto/sqs/models.py lines 624-631),
   so a message another thread sends or deletes in between is lost or comes back: a concurrent send lands in
   a list that is then overwritten (gone: the likely cause of the chaos soak's one lost message), a concurrent
   delete is undone (the message reappears after its visibility timeout). Sends, receive passes, deletes,
   visibility changes, attribute reads, purges and queue deletions of the SQS backend share one reentrant
   lock (a batch call takes it again per entry). tests/integration/test_emulators.py checks it.

Real SQS has none of these flaws, and no consumer can keep a group in order on a server that has the first
two. Every other call is unchanged. The tests, scripts/run-local.sh, scripts/image-check.sh and the compose
stack run moto through this file; tests/integration/test_user_paths.py runs plain moto too.

    python docker/moto/moto_sqs_server.py [--host 127.0.0.1] PORT
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from moto.core.utils import unix_time_millis
from moto.moto_server.threaded_moto_server import MotoRequestHandler  # type: ignore[attr-defined]
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.sqs.models import Message, Queue, SQSBackend
from werkzeug.serving import run_simple

PASS_INTERVAL_S = 0.02  # between the passes of a long poll
# Fixes 1 and 4: held by each receive pass and by every other call that reads or changes a queue's messages.
# Reentrant because moto's batch calls and its DLQ move call the single-message methods under it.
_queue_lock = threading.RLock()
_original_receive = SQSBackend.receive_message
# One instant per receive pass, for the receiving thread only: otherwise a message can expire between the
# expiry below and moto's own check a few microseconds later, and moto's one-by-one path runs again.
_clock = threading.local()


def _now_ms() -> float:
    now = getattr(_clock, "now_ms", None)
    return unix_time_millis() if now is None else now


def _visible(self: Message) -> bool:
    return _now_ms() > self.visible_at


def _expire(queue: Queue) -> None:
    _clock.now_ms = unix_time_millis()
    for message in [m for m in queue.pending_messages if m.visible]:
        queue.pending_messages.discard(message)


def _receive_message(
    self: SQSBackend,
    queue_name: str,
    count: int,
    wait_seconds_timeout: int,
    visibility_timeout: int,
    message_attribute_names: list[str] | None = None,
) -> list[Any]:
    deadline = time.monotonic() + (wait_seconds_timeout or 0)
    while True:
        with _queue_lock:
            try:
                _expire(self.get_queue(queue_name))  # before moto computes which groups are locked
                result = _original_receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            finally:
                _clock.now_ms = None
        if result or time.monotonic() >= deadline:
            return result  # type: ignore[no-any-return]
        time.sleep(PASS_INTERVAL_S)


_F = TypeVar("_F", bound=Callable[..., Any])


def _serialised(method: _F) -> _F:
    @wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _queue_lock:
            return method(*args, **kwargs)

    return locked  # type: ignore[return-value]


SQSBackend.receive_message = _receive_message  # type: ignore[method-assign]
Message.visible = property(_visible)  # type: ignore[method-assign,assignment]
# Everything else that iterates or replaces Queue._messages / _pending_messages (receive is locked above, per
# pass, so that a long poll does not hold the lock while it waits).
for _name in (
    "send_message",
    "send_message_batch",
    "delete_message",
    "delete_message_batch",
    "change_message_visibility",
    "change_message_visibility_batch",
    "get_queue_attributes",
    "purge_queue",
    "delete_queue",
):
    setattr(SQSBackend, _name, _serialised(getattr(SQSBackend, _name)))


def main() -> None:
    parser = argparse.ArgumentParser(description="moto's server with SQS FIFO receives fixed")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
