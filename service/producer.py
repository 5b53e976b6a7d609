"""The producer half of the write path: send writes to the queue with the keys sqs2pg needs.

    from sqs2pg import Producer

    async with Producer("https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo") as producer:
        sent = await producer.send({"order": 42, "status": "paid"}, group="order-42", key="order-42-paid")
        ...
        print(await producer.status([sent.key]))  # needs database_url=...

Every message gets the same three things, the way sqs2pg reads them: ``MessageGroupId`` (the order), the
``idempotency_key`` String attribute (the caller's key, or a generated one that is returned), and a
``MessageDeduplicationId`` derived from the key (the key itself when SQS accepts it as one, else its SHA-256),
so a retried send within SQS's 5-minute window is dropped by SQS and a later one by sqs2pg, and the key
survives a DLQ redrive. One client is opened once and reused: open a Producer at start-up (a web app's
lifespan) and share it. Whole calls are retried by botocore's standard retry mode (credentials, signing and
retry rules stay the SDK's); of a batch, only the entries SQS failed without blaming the sender are sent again.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aioboto3
import botocore.exceptions
from botocore.config import Config as BotoConfig

from .config import region_from_url
from .message import IDEMPOTENCY_ATTRIBUTE, MAX_ATTRIBUTES, MAX_KEY_LENGTH, SQS_ID, dedup_id, queue_name, size_of
from .observe.traces import Sends

BATCH = 10  # SendMessageBatch's limit
BATCH_BYTES = 1_048_576  # SendMessageBatch's limit on the sum of its messages
DEFAULT_MAX_BYTES = 1_048_576  # SQS's largest MaximumMessageSize, when the queue's own cannot be read
ATTEMPTS = 5  # per entry, for entries SQS failed on its side (and per call, in botocore's retry mode)


class ProducerError(Exception):
    """A write that cannot be sent as it is (no group, a body over the queue's limit, a bad key)."""


@dataclass(frozen=True)
class Write:
    body: Any  # a str is sent as it is; anything else as JSON
    group: str
    key: str | None = None
    attributes: Mapping[str, str | int | float] = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    key: str
    group: str
    message_id: str


@dataclass(frozen=True)
class Failed:
    key: str
    group: str
    code: str
    reason: str


def _text(body: Any) -> str:
    return body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _attribute(value: str | int | float) -> dict[str, str]:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ProducerError(f"attribute value {value!r} must be a str or a number")
    return {"DataType": "String" if isinstance(value, str) else "Number", "StringValue": str(value)}


class Producer:
    """Sends writes to one SQS FIFO queue for sqs2pg; see the module docstring. Use as ``async with``, or call
    ``open()`` and ``close()``."""

    def __init__(
        self,
        queue_url: str,
        *,
        region: str | None = None,
        database_url: str | None = None,
        session: aioboto3.Session | None = None,
        max_attempts: int = ATTEMPTS,
    ) -> None:
        if not queue_url.rstrip("/").endswith(".fifo"):
            raise ProducerError(f"{queue_url!r} is not the URL of a FIFO queue (…/name.fifo)")
        self.queue_url = queue_url
        self.queue_name = queue_name(queue_url)
        self._region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self._region = self._region or region_from_url(queue_url)
        self._database_url = database_url
        self._session = session or aioboto3.Session()
        self._attempts = max_attempts
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._pool: Any = None  # asyncpg, for status(), opened on first use
        self.max_bytes = DEFAULT_MAX_BYTES

    async def open(self) -> Producer:
        config = BotoConfig(
            region_name=self._region,
            connect_timeout=5,
            retries={"mode": "standard", "max_attempts": self._attempts},
        )
        try:
            self._client = await self._stack.enter_async_context(self._session.client("sqs", config=config))
            got = await self._client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["MaximumMessageSize"]
            )
            self.max_bytes = int(got["Attributes"].get("MaximumMessageSize", DEFAULT_MAX_BYTES))
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
                await self.close()
                raise ProducerError(f"queue {self.queue_url} does not exist") from exc
            # no sqs:GetQueueAttributes: SQS itself refuses what is too large
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    async def __aenter__(self) -> Producer:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(
        self, body: Any, group: str, key: str | None = None, attributes: Mapping[str, str | int | float] | None = None
    ) -> Sent:
        """Send one write; returns its key (the caller's, or the generated one). Raises ProducerError when it
        cannot be sent, or SQS refused it after the retries."""
        result = (await self.send_many([Write(body, group, key, attributes or {})]))[0]
        if isinstance(result, Failed):
            raise ProducerError(f"SQS refused the write with key {result.key!r}: {result.code}: {result.reason}")
        return result

    async def send_many(self, writes: Iterable[Write]) -> list[Sent | Failed]:
        """Send writes in batches of 10 (fewer when their bodies add up to more than a batch may carry), in the
        order given: within a group, SQS keeps it. Each write's result is at its index. A write that cannot be
        sent at all (no group, too large) raises ProducerError before anything is sent.

        Order within a group is never broken: once a write of a group fails, the later writes of that group in
        this call are not sent (Failed, code ``skipped``), and a failed write is sent again only when no later
        write of its group went through beside it."""
        sends = Sends(self.queue_name)  # with an OpenTelemetry SDK set up: a send span per write, its context sent
        results: list[Sent | Failed | None] = []
        try:
            entries = [self._entry(i, w, sends.start(w.attributes)) for i, w in enumerate(writes)]
            results = [None] * len(entries)
            failed_groups: set[str] = set()
            for batch in _batches(entries):
                for e in batch:
                    if e["MessageGroupId"] in failed_groups:
                        results[int(e["Id"])] = _failed(e, "skipped", "an earlier write of its group failed")
                batch = [e for e in batch if e["MessageGroupId"] not in failed_groups]
                if batch:
                    failed_groups |= await self._send_batch(batch, results)
        finally:
            sends.end(results)
        return [r for r in results if r is not None]

    def validate(self, write: Write) -> None:
        """Raise ProducerError if the write cannot be sent as it is (what send_many would refuse); the reason
        names no index (the caller knows which write it asked about)."""
        self._entry(0, write, Sends(self.queue_name).reserved(), named="")

    def _entry(
        self, index: int, write: Write, trace: dict[str, dict[str, str]], named: str | None = None
    ) -> dict[str, Any]:
        """The SendMessageBatch entry of writes[index], with the trace context's attributes; ProducerError naming it
        (``named``, else "write INDEX: ")."""
        named = f"write {index}: " if named is None else named
        if not isinstance(write.group, str) or not SQS_ID.fullmatch(write.group):
            raise ProducerError(
                f"{named}group {write.group!r} must be 1 to 128 printable ASCII characters (MessageGroupId)"
            )
        key = str(uuid.uuid4()) if write.key is None else write.key
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise ProducerError(f"{named}key must be a string of 1 to {MAX_KEY_LENGTH} characters")
        body = _text(write.body)
        attributes = {name: _attribute(v) for name, v in write.attributes.items()}
        attributes[IDEMPOTENCY_ATTRIBUTE] = _attribute(key)
        attributes.update(trace)
        if len(attributes) > MAX_ATTRIBUTES and "tracestate" in trace:
            del attributes["tracestate"]  # W3C lets a hop drop the vendors' part; the context itself stays
        if len(attributes) > MAX_ATTRIBUTES:  # refused here, whole: SQS would refuse it, and nothing is dropped
            with_trace = " and the trace context (traceparent)" if trace else ""
            raise ProducerError(
                f"{named}{len(attributes)} message attributes with idempotency_key{with_trace}: SQS takes "
                f"{MAX_ATTRIBUTES}; send at most {MAX_ATTRIBUTES - len(attributes) + len(write.attributes)} of your own"
            )
        size = size_of(body, attributes)
        if size > self.max_bytes:
            raise ProducerError(
                f"{named}{size} bytes with its attributes (key {key!r}), over {self.queue_name}'s "
                f"MaximumMessageSize of {self.max_bytes}"
            )
        return {
            "Id": str(index),
            "MessageBody": body,
            "MessageGroupId": write.group,
            "MessageDeduplicationId": dedup_id(key),
            "MessageAttributes": attributes,
            "_size": size,
        }

    async def _send_batch(self, batch: list[dict[str, Any]], results: list[Sent | Failed | None]) -> set[str]:
        """Send one batch, sending again what SQS failed on its own side; returns the groups that lost a write."""
        pending = batch
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
            try:
                answer = await self._client.send_message_batch(
                    QueueUrl=self.queue_url, Entries=[{k: v for k, v in e.items() if k != "_size"} for e in pending]
                )
            except botocore.exceptions.ClientError as exc:  # after botocore's own retries
                error = exc.response.get("Error", {})
                for e in pending:
                    results[int(e["Id"])] = _failed(e, error.get("Code", "error"), error.get("Message", str(exc)))
                return {e["MessageGroupId"] for e in pending}
            failed = {f["Id"]: f for f in answer.get("Failed", [])}
            ok = {s["Id"]: s for s in answer.get("Successful", [])}
            retry: list[dict[str, Any]] = []
            lost: set[str] = set()
            for i, e in enumerate(pending):
                if e["Id"] in ok:
                    results[int(e["Id"])] = Sent(_key(e), e["MessageGroupId"], ok[e["Id"]]["MessageId"])
                    continue
                bad = failed.get(e["Id"], {"Code": "missing", "Message": "not in SQS's answer", "SenderFault": True})
                results[int(e["Id"])] = _failed(e, str(bad.get("Code", "failed")), str(bad.get("Message", "")))
                later_went = any(x["Id"] in ok and x["MessageGroupId"] == e["MessageGroupId"] for x in pending[i:])
                if bad.get("SenderFault", False) or later_went:
                    lost.add(e["MessageGroupId"])  # resending it would put it behind a later write of its group
                else:
                    retry.append(e)  # SQS's side failed it (throttled, an internal error): sent again
            pending = [e for e in retry if e["MessageGroupId"] not in lost]
            for e in retry:
                if e["MessageGroupId"] in lost:
                    results[int(e["Id"])] = _failed(e, "skipped", "an earlier write of its group failed")
            if not pending:
                return lost
        return {e["MessageGroupId"] for e in pending}

    async def status(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each key's write status from sqs2pg's idempotency records (writes.py): committed, duplicate,
        dead_lettered (with its reason) or unknown. Needs ``database_url``."""
        import asyncpg

        from .db import records as writes

        if not self._database_url:
            raise ProducerError("Producer(database_url=...) is needed to read write statuses")
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self._database_url, min_size=0, max_size=2)
            self._stack.push_async_callback(self._close_pool)
        return await writes.lookup(self._pool, keys)

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        await pool.close()


def _key(entry: dict[str, Any]) -> str:
    return str(entry["MessageAttributes"][IDEMPOTENCY_ATTRIBUTE]["StringValue"])


def _failed(entry: dict[str, Any], code: str, reason: str) -> Failed:
    return Failed(_key(entry), entry["MessageGroupId"], code, reason)


def _batches(entries: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for e in entries:
        if batch and (len(batch) == BATCH or size + e["_size"] > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(e)
        size += e["_size"]
    if batch:
        yield batch
