"""A local SQS for development and tests: moto's server, its FIFO flaws fixed, with FIFO queues made at start.

    sqs2pg local-sqs [--port 4566] [--queue orders.fifo]    # after: pip install 'sqs2pg[local]'
    python local.py [--host 0.0.0.0] [--queue orders.fifo] PORT   # this file alone, where only moto is installed

It prints the settings that point sqs2pg at it (``export AWS_ENDPOINT_URL_SQS=... SQS_QUEUE_URLS=...``) and
serves until Ctrl-C or SIGTERM. Each ``--queue NAME.fifo`` is made with its dead-letter queue NAME-dlq.fifo,
wired by a RedrivePolicy. Queues live in memory: a restart forgets them.

What it fixes in moto's server so that it keeps the promises SQS keeps (real SQS has none of these flaws, and no
consumer can keep a group in order on a server that has the first two):

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
   so a message another thread sends or deletes in between is lost or comes back. Sends, receive passes,
   deletes, visibility changes, attribute reads, purges and queue deletions share one reentrant lock (a batch
   call takes it again per entry).
5. SequenceNumbers that increase in send order, as SQS's do. moto gives each message 20 random digits (and none
   at all on a queue with content-based deduplication), so nothing could check a group's order by them.

And two for speed, without which a send took time in proportion to the backlog (1,000 messages took 133 s to
send and 40 s to drain): each call reads the clock once (moto asks the wall clock, through datetime, twice for
every message in the queue each time it counts them; a call is atomic under the lock above, so one instant per
call is what SQS's own answer would be judged at), each queue's attributes are built once per call (moto builds
them all, counting every message three times, four times per send and for each message a receive considers), a
delete finds its message among those in flight, and the server lists moto's own modules once, not per request.

Every other call is unchanged. This file imports nothing of sqs2pg (the compose stack mounts it into moto's own
image), and moto only when the server starts.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, TypeVar

PASS_INTERVAL_S = 0.02  # between the passes of a long poll
REGION = "us-east-1"
_F = TypeVar("_F", bound=Callable[..., Any])


def dlq_name(name: str) -> str:
    """The dead-letter queue made beside queue ``name`` (orders.fifo -> orders-dlq.fifo)."""
    return name.removesuffix(".fifo") + "-dlq.fifo"


def queue_attributes(dlq_arn: str, max_receive_count: int, visibility_timeout_s: int) -> dict[str, str]:
    """A FIFO queue's attributes, wired to its dead-letter queue: the one rule for every queue made locally (here,
    and by the tests, the benchmark and the chaos soak). 1 MiB, SQS's largest message, is set explicitly (as the
    Terraform module does: its provider's default is still 256 KiB)."""
    return {
        "FifoQueue": "true",
        "MaximumMessageSize": "1048576",
        "VisibilityTimeout": str(visibility_timeout_s),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}),
    }


DLQ_ATTRIBUTES = {"FifoQueue": "true", "MaximumMessageSize": "1048576"}


def create_queue(client: Any, name: str, max_receive_count: int = 25, visibility_timeout_s: int = 30) -> str:
    """Make ``name`` (a .fifo name) and its dead-letter queue with a boto3 client; returns the queue's URL. Making a
    queue that exists with the same attributes is a no-op on SQS."""
    dlq_url = client.create_queue(QueueName=dlq_name(name), Attributes=DLQ_ATTRIBUTES)["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = queue_attributes(arn, max_receive_count, visibility_timeout_s)
    return str(client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def patch_moto() -> None:
    """Apply the five fixes above to moto's SQS backend (in this process)."""
    from moto import backends
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Message, Queue, SQSBackend

    # Fixes 1 and 4: held by each receive pass and by every other call that reads or changes a queue's messages.
    # Reentrant because moto's batch calls and its DLQ move call the single-message methods under it.
    queue_lock = threading.RLock()
    original_receive = SQSBackend.receive_message
    # One instant per receive pass, for the receiving thread only: otherwise a message can expire between the
    # expiry below and moto's own check a few microseconds later, and moto's one-by-one path runs again. (And one
    # per call, with one reading of each queue's attributes: the speed fix.)
    clock = threading.local()
    all_attributes = Queue.attributes.fget  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def one_instant() -> Iterator[None]:
        if getattr(clock, "now_ms", None) is not None:  # within a call already (a batch call's entries)
            yield
            return
        clock.now_ms, clock.attributes = unix_time_millis(), {}
        try:
            yield
        finally:
            clock.now_ms = clock.attributes = None

    def attributes(self: Queue) -> dict[str, Any]:
        cache = getattr(clock, "attributes", None)
        if cache is None:
            return all_attributes(self)  # type: ignore[no-any-return]
        if id(self) not in cache:
            cache[id(self)] = all_attributes(self)
        return dict(cache[id(self)])

    def now_ms() -> float:
        now = getattr(clock, "now_ms", None)
        return unix_time_millis() if now is None else now

    def visible(self: Message) -> bool:
        return now_ms() > self.visible_at

    def delayed(self: Message) -> bool:
        return now_ms() < self.delayed_until

    original_delete = Queue.delete_message

    def delete_message(self: Queue, receipt_handle: str) -> None:
        # The message a handle names is in flight, nearly always: found among those, it leaves the queue's list by
        # identity (moto compares every message's every handle, then builds the list anew, for each delete).
        if receipt_handle not in self.deleted_messages:
            held = next((m for m in self.pending_messages if m.had_receipt_handle(receipt_handle)), None)
            if held is not None:
                self.pending_messages.discard(held)
                self.deleted_messages.update(held.all_receipt_handles)  # type: ignore[arg-type]
                self._messages.remove(held)
                return
        original_delete(self, receipt_handle)

    def expire(queue: Queue) -> None:
        for message in [m for m in queue.pending_messages if m.visible]:
            queue.pending_messages.discard(message)

    def receive_message(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        while True:
            with queue_lock, one_instant():
                expire(self.get_queue(queue_name))  # before moto computes which groups are locked
                result = original_receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            if result or time.monotonic() >= deadline:
                return result
            time.sleep(PASS_INTERVAL_S)

    def serialised(method: _F) -> _F:
        @wraps(method)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with queue_lock, one_instant():
                return method(*args, **kwargs)

        return locked  # type: ignore[return-value]

    numbers = itertools.count(time.time_ns())  # increasing across restarts too, as SQS's grow over time

    def numbered(send: _F) -> _F:
        @wraps(send)
        def send_message(*args: Any, **kwargs: Any) -> Any:
            message = send(*args, **kwargs)
            if message.group_id is not None:  # a FIFO queue's message (sends are serialised: fix 4)
                message.sequence_number = f"{next(numbers):020d}"
            return message

        return send_message  # type: ignore[return-value]

    SQSBackend.send_message = numbered(SQSBackend.send_message)  # type: ignore[method-assign]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    Message.visible = property(visible)  # type: ignore[method-assign,assignment]
    Message.delayed = property(delayed)  # type: ignore[method-assign,assignment]
    Queue.attributes = property(attributes)  # type: ignore[method-assign,assignment]
    Queue.delete_message = delete_message  # type: ignore[method-assign]
    # moto's server lists its own package directory (an isdir per entry) for every request, to tell which service
    # the Host header names: the list does not change while it runs.
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    # Everything else that iterates or replaces Queue._messages / _pending_messages (receive is locked above, per
    # pass, so that a long poll does not hold the lock while it waits).
    for name in (
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
        setattr(SQSBackend, name, serialised(getattr(SQSBackend, name)))


def serve(host: str, port: int, queues: list[str], max_receive_count: int = 25, plain: bool = False) -> int:
    """Serve until SIGINT or SIGTERM; print the settings for sqs2pg once the queues are made. ``plain``: moto as it
    comes, without the fixes (to see what they fix). Returns the exit code."""
    try:
        import boto3
        from moto.moto_server.threaded_moto_server import MotoRequestHandler  # type: ignore[attr-defined]
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server
    except ImportError as exc:
        print(f"local SQS needs moto's server ({exc.name} is missing): pip install 'sqs2pg[local]'", file=sys.stderr)
        return 2
    if not plain:
        patch_moto()
    # stdout carries only the settings printed below (scripts source them): log lines go to stderr, and not one
    # per request
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = DomainDispatcherApplication(create_backend_app)
    try:
        server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    except OSError as exc:
        print(f"cannot listen on {host}:{port} ({exc.strerror or exc}): pass another --port", file=sys.stderr)
        return 2
    if isinstance(server, socketserver.ThreadingMixIn):  # a request still served at a stop keeps no port open
        server.daemon_threads = True
    port = server.server_port
    os.environ.setdefault("MOTO_PORT", str(port))
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    endpoint = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    client = boto3.client(
        "sqs", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="local", aws_secret_access_key="local"
    )
    urls = [create_queue(client, q if q.endswith(".fifo") else q + ".fifo", max_receive_count) for q in queues]
    aws = f"AWS_REGION={REGION} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local"
    print(f"export AWS_ENDPOINT_URL_SQS={endpoint} {aws}", flush=True)
    if urls:
        print(f"export SQS_QUEUE_URLS={','.join(urls)}", flush=True)
    print(f"local SQS at {endpoint}{' (plain moto)' if plain else ''}; Ctrl-C stops it", file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # Woken every 0.2 s: a SIGTERM the kernel hands to a moto thread runs only when the main thread wakes (CI twice)
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()  # the port is let go now, not when the interpreter is done
    return 0


def add_arguments(parser: argparse.ArgumentParser, default_port: int | None) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    if default_port is None:
        parser.add_argument("port", type=int, help="port to listen on (0: a free one)")
    else:
        parser.add_argument("--port", type=int, default=default_port, help=f"port (default {default_port}; 0: free)")
    parser.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME",
        help="make this FIFO queue and its dead-letter queue (repeatable)",
    )
    parser.add_argument(
        "--max-receive-count", type=int, default=25, help="the queues' RedrivePolicy maxReceiveCount (default 25)"
    )
    parser.add_argument("--plain", action="store_true", help="moto as it comes, without the fixes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="moto's SQS server with its FIFO flaws fixed")
    add_arguments(parser, default_port=None)
    args = parser.parse_args(argv)
    return serve(args.host, args.port, args.queue, args.max_receive_count, args.plain)


if __name__ == "__main__":
    sys.exit(main())
