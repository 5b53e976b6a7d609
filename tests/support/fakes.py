"""In-memory stand-ins for SQS and the store, for unit tests of the ordering rules that run in milliseconds.

They keep the promises sqs2pg relies on and nothing more (procrastinate's InMemoryConnector plays the same
part there). Claims about loss, duplicates and order are still proven against real servers in
tests/integration; these only make the rules fast to pin down.

FakeSqs is one FIFO queue with its dead-letter queue: messages in send order; a group is locked while any of
its messages is in flight (received, visibility not yet over, not deleted); a receive hands out visible
messages of unlocked groups in order, up to ``per_group`` of one group (1 like fauxqs, 10 like SQS and moto);
a receipt handle is new at every receive and a stale one fails a delete; past ``max_receive_count`` receives a
message moves to the DLQ. Every call is recorded in ``calls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqs2pg.db.runs import Passes
from sqs2pg.errors import Behind, Outcome, PermanentError, Sqs2pgError, classify
from sqs2pg.message import Message, queue_name
from sqs2pg.sqs.queues import QueueInfo

if TYPE_CHECKING:
    from sqs2pg.consume.ports import Database, Queues

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/fake.fifo"
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/fake-dlq.fifo"


@dataclass
class Stored:
    id: str
    body: str
    group: str
    dedup: str
    attributes: dict[str, Any]
    sent_ms: int
    sequence_number: int = 0  # as SQS gives it: increasing in send order
    receive_count: int = 0
    visible_at: float = 0.0
    receipt_handle: str = ""
    deleted: bool = False
    trace_header: str | None = None  # SQS's AWSTraceHeader system attribute


@dataclass
class FakeSqs:
    per_group: int = 10
    max_receive_count: int = 10
    queue_url: str = QUEUE_URL
    dlq_url: str = DLQ_URL
    messages: list[Stored] = field(default_factory=list)
    dead: list[Stored] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    receiving: int = 0  # receives in flight now
    most_receiving: int = 0  # the most at once so far
    most_in_flight: int = 0  # the most messages invisible (received, not deleted or handed back) at once
    extension_delay_s: float = 0.0  # how long a visibility change to more than 0 s takes to land
    receive_delay_s: float = 0.0  # how long a receive takes before it looks at the queue
    stall: set[str] = field(default_factory=set)  # operations that never answer (until cancelled)
    watching: bool = False
    answering: bool = True
    _ids: Any = field(default_factory=itertools.count)
    _changed: asyncio.Event | None = None

    # --- what a producer does ---

    def send_message(
        self,
        body: str,
        group: str,
        dedup: str,
        attributes: dict[str, Any] | None = None,
        trace_header: str | None = None,
    ) -> None:
        if any(m.dedup == dedup and not m.deleted for m in self.messages):
            return  # deduplicated
        n = next(self._ids)
        sent_ms = int(time.time() * 1000)
        self.messages.append(
            Stored(f"m{n}", body, group, dedup, attributes or {}, sent_ms, 10**19 + n, trace_header=trace_header)
        )
        self._notify()

    def in_flight(self) -> list[Stored]:
        now = time.monotonic()
        return [m for m in self.messages if not m.deleted and m.visible_at > now]

    def waiting(self) -> list[Stored]:
        return [m for m in self.messages if not m.deleted]

    # --- the Sqs interface the service uses ---

    @property
    def endpoint(self) -> str:
        return "fake://sqs"

    async def open(self) -> None:
        self._changed = asyncio.Event()

    async def close(self) -> None:
        pass

    async def describe(self, url: str) -> QueueInfo:
        return QueueInfo(
            url=url,
            name=queue_name(url),
            arn="arn:aws:sqs:us-east-1:123456789012:fake.fifo",
            dlq_url=self.dlq_url,
            max_receive_count=self.max_receive_count,
            visibility_timeout_s=30,
        )

    async def receive(
        self, url: str, wait_s: int | None = None, visibility_s: int | None = None, max_messages: int | None = None
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + (wait_s if wait_s is not None else 1)
        self.receiving += 1
        self.most_receiving = max(self.most_receiving, self.receiving)
        try:
            if "receive" in self.stall:
                await asyncio.Event().wait()
            if self.receive_delay_s:
                await asyncio.sleep(self.receive_delay_s)  # the round trip, so that receives can overlap
            while True:
                taken = self._take(max_messages or 10, visibility_s if visibility_s is not None else 30)
                self.most_in_flight = max(self.most_in_flight, len(self.in_flight()))
                if taken or time.monotonic() >= deadline:
                    self.calls.append(("receive", (wait_s, len(taken))))
                    return taken
                assert self._changed is not None
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))
        finally:
            self.receiving -= 1

    def _take(self, limit: int, visibility_s: int) -> list[dict[str, Any]]:
        now = time.monotonic()
        locked = {m.group for m in self.messages if not m.deleted and m.visible_at > now}
        per_group: dict[str, int] = {}
        out: list[dict[str, Any]] = []
        for m in self.messages:
            if len(out) >= limit:
                break
            if m.deleted or m.group in locked or per_group.get(m.group, 0) >= self.per_group:
                continue
            if m.visible_at > now:
                continue
            if m.receive_count >= self.max_receive_count:  # SQS's own redrive, on the next receive
                m.deleted = True
                self.dead.append(m)
                continue
            m.receive_count += 1
            m.visible_at = now + visibility_s
            m.receipt_handle = f"{m.id}-r{m.receive_count}"
            per_group[m.group] = per_group.get(m.group, 0) + 1
            out.append(
                {
                    "MessageId": m.id,
                    "ReceiptHandle": m.receipt_handle,
                    "Body": m.body,
                    "Attributes": {
                        "MessageGroupId": m.group,
                        "MessageDeduplicationId": m.dedup,
                        "ApproximateReceiveCount": str(m.receive_count),
                        "SentTimestamp": str(m.sent_ms),
                        "SequenceNumber": str(m.sequence_number),
                        **({"AWSTraceHeader": m.trace_header} if m.trace_header else {}),
                    },
                    "MessageAttributes": m.attributes,
                }
            )
            # A group stays together within a receive, as on SQS: later messages of a locked group wait.
        return out

    def _find(self, receipt_handle: str) -> Stored | None:
        return next((m for m in self.messages if m.receipt_handle == receipt_handle and not m.deleted), None)

    async def delete(self, url: str, messages: list[Message]) -> list[tuple[Message, str]]:
        self.calls.append(("delete", [m.message_id for m in messages]))
        failed = []
        for message in messages:
            stored = self._find(message.receipt_handle)
            if stored is None or stored.visible_at <= time.monotonic():
                failed.append((message, "ReceiptHandleIsInvalid: stale receipt handle"))
            else:
                stored.deleted = True
        self._notify()
        return failed

    async def change_visibility(self, url: str, entries: list[tuple[Message, int]]) -> list[tuple[Message, str]]:
        self.calls.append(("change_visibility", [(m.message_id, s) for m, s in entries]))
        if "change_visibility" in self.stall:
            await asyncio.Event().wait()
        if any(seconds > 0 for _, seconds in entries):
            await asyncio.sleep(self.extension_delay_s)  # a slow network, for the heartbeat's extensions
        failed = []
        for message, seconds in entries:
            stored = self._find(message.receipt_handle)
            if stored is None:
                failed.append((message, "ReceiptHandleIsInvalid: stale receipt handle"))
            else:
                stored.visible_at = time.monotonic() + seconds
        self._notify()
        return failed

    async def send_to_dlq(
        self, dlq_url: str, message: Message, error: Sqs2pgError, trace: dict[str, Any] | None = None
    ) -> tuple[str, list[str]]:
        self.calls.append(("send_to_dlq", (message.message_id, error.kind)))
        self.dead.append(
            Stored(
                message.message_id,
                message.body,
                message.group_id,
                message.message_id,
                {"sqs2pg_error_kind": {"DataType": "String", "StringValue": error.kind}, **(trace or {})},
                0,
            )
        )
        return "full", []

    async def send(
        self,
        url: str,
        message: Message,
        attributes: dict[str, Any],
        dedup_id: str,
        keep_original: bool = True,
        trace: dict[str, Any] | None = None,
    ) -> None:
        self.calls.append(("send", message.message_id))
        self.send_message(message.body, message.group_id, dedup_id, attributes)

    async def counts(self, url: str) -> dict[str, int]:
        pool = self.dead if url == self.dlq_url else [m for m in self.messages if not m.deleted]
        now = time.monotonic()
        return {
            "visible": sum(m.visible_at <= now for m in pool),
            "in_flight": sum(m.visible_at > now for m in pool),
            "delayed": 0,
        }

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()


@dataclass
class FakeStore:
    """The store's contract in memory: each message applied once under its idempotency key, or failed with what
    ``fail(message)`` returns (an exception to raise), in the order they came."""

    fail: Callable[[Message], Exception | None] = lambda message: None
    applied: list[tuple[str, str, str]] = field(default_factory=list)  # (key, group, body), in commit order
    keys: set[str] = field(default_factory=set)
    dead_lettered: dict[str, bool] = field(default_factory=dict)  # key -> its DLQ copy is known to be sent
    down: Exception | None = None  # what the probe says while the database is "down"
    delay_s: float = 0.0  # each transaction takes this long
    last_success: float = 0.0
    verdicts: dict[tuple[str, int], str] = field(default_factory=dict)  # queues' order verdicts

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def apply_many(self, messages: list[Message]) -> list[Outcome | Sqs2pgError]:
        await asyncio.sleep(self.delay_s)  # a transaction is a round trip
        results: list[Outcome | Sqs2pgError] = []
        passes = Passes()  # the store's rule for a group's later messages once one failed (db/runs.py)
        for message in messages:
            error = self.fail(message)
            if passes.behind(message):
                results.append(Behind())
            elif error is not None:
                results.append(passes.result(message, classify(error)))  # as the store classifies a failure
            elif message.idempotency_key in self.keys:
                results.append(Outcome.DUPLICATE)
            elif message.idempotency_key in self.dead_lettered and not message.redriven:
                copied = self.dead_lettered[message.idempotency_key]
                before = Outcome.DUPLICATE if copied else PermanentError("dead-lettered before", kind="data")
                results.append(passes.result(message, before))
            else:
                if not message.is_json:
                    invalid = PermanentError("body is not valid JSON", kind="invalid_message")
                    results.append(passes.result(message, invalid))
                    continue
                self.keys.add(message.idempotency_key)
                self.dead_lettered.pop(message.idempotency_key, None)  # a redriven copy, applied
                self.applied.append((message.idempotency_key, message.group_id, message.body))
                self.last_success = time.monotonic()
                results.append(Outcome.COMMITTED)
        return results

    async def record_dead_letter(self, message: Message, error: Exception) -> bool:
        try:
            key = message.idempotency_key
        except PermanentError:
            return False
        if key in self.keys:
            return False  # a commit keeps its key
        self.dead_lettered[key] = False
        return True

    async def dead_letter_copied(self, message: Message) -> None:
        self.dead_lettered[message.idempotency_key] = True

    async def probe(self, timeout_s: float = 2.0) -> Exception | None:
        return self.down

    async def unavailable(self, timeout_s: float = 2.0) -> str | None:
        return None if self.down is None else str(self.down)

    async def ping(self, timeout_s: float = 2.0) -> bool:
        return self.down is None

    async def prune(self, retention_s: float | None, batch_size: int, pause_s: float = 0.05) -> int | None:
        return 0

    async def quarantined_counts(self) -> dict[str, int]:
        return {}

    async def write_status(self, key: str) -> dict[str, Any]:
        return {"key": key, "status": "committed" if key in self.keys else "unknown"}

    async def queue_orders(self) -> dict[tuple[str, int], str]:
        return dict(self.verdicts)

    async def judged(self, queue_name: str, queue_created: int, verdict: str) -> None:
        key = (queue_name, queue_created)
        self.verdicts[key] = "sent" if "sent" in (verdict, self.verdicts.get(key)) else verdict


if TYPE_CHECKING:  # the fakes keep the runtime's contracts (sqs2pg/consume/ports.py): mypy checks them here
    _database: Database = FakeStore()
    _queues: Queues = FakeSqs()
