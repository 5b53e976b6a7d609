"""moto's server, with two fixes to its FIFO group lock, so that it keeps the promise SQS keeps.

1. ReceiveMessage calls are served one at a time. moto serves requests on threads and checks and marks a
   group's in-flight state without a lock, so two concurrent receives can both be handed messages of one group
   (scripts/probe_group_lock.py: 9 times in 60 rounds of 4 concurrent receives; 0 with this fix).
2. Every in-flight message whose visibility has expired stops being in flight all at once, before a receive
   and at every pass of its long-poll loop, judged at one instant per pass. moto drops them one by one while iterating, so when several
   messages of a group expire together (a consumer that held them died, or a receive response was lost)
   it hands out the *last* of them first.

Real SQS does neither, and no consumer can keep a group in order on a server that does. Every other call
stays concurrent, and everything else about moto is unchanged.

    python tests/moto_sqs_server.py PORT
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable, Iterable

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.core.utils import unix_time_millis
from moto.sqs.models import Message, Queue, SQSBackend
from werkzeug.serving import run_simple

_receive = threading.Lock()
_original_receive = SQSBackend.receive_message


_original_messages = Queue.messages
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


def _receive_message(self: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
    try:
        _expire(self.get_queue(queue_name))  # before moto computes which groups are locked
        return _original_receive(self, queue_name, *args, **kwargs)
    finally:
        _clock.now_ms = None


def _messages(self: Queue) -> list[Any]:
    _expire(self)  # at every pass of the long-poll loop, which starts by reading this property
    return _original_messages.fget(self)  # type: ignore[no-any-return,attr-defined]


SQSBackend.receive_message = _receive_message  # type: ignore[method-assign]
Queue.messages = property(_messages)  # type: ignore[method-assign,assignment]
Message.visible = property(_visible)  # type: ignore[method-assign,assignment]


def serialise_receives(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        is_receive = target.endswith(".ReceiveMessage") or "Action=ReceiveMessage" in environ.get("QUERY_STRING", "")
        if not is_receive:
            return app(environ, start_response)
        with _receive:
            return list(app(environ, start_response))

    return wrapped


def main() -> None:
    port = int(sys.argv[1])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, serialise_receives(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
