"""SQS calls, each one translated once: failures become RetryableError/PermanentError and are counted."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import aioboto3
import aiobotocore
import aiobotocore.session
import botocore
import botocore.exceptions
from botocore.config import Config as BotoConfig
from botocore.httpsession import get_cert_path

from ..config import Settings
from ..errors import PermanentError, RetryableError, Sqs2pgError, StartupError, classify, sqs_error
from ..message import Message, queue_name
from ..observe import logs
from ..observe.metrics import Metrics
from ..version import __version__
from . import deadletter
from .lean import HOT_OPERATIONS, SqsJsonClient
from .queues import QueueError, QueueInfo, queue_info, redrive_policy, unusable

CONNECT_TIMEOUT_S = 5
MAX_ATTEMPTS = 3  # botocore's standard mode: the first try and two retries
# A call SQS has not answered this long after its long-poll wait (if any) is over is an SQS error: a hung server
# or connection, seen within seconds, not after botocore's read timeout of every retry.
ANSWER_WITHIN_S = 10.0
USER_AGENT = f"sqs2pg/{__version__} aiobotocore/{aiobotocore.__version__} botocore/{botocore.__version__}"


class Sqs:
    """A thin, counted wrapper around one aiobotocore SQS client."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._hot: SqsJsonClient | None = None  # the hot calls' lean client (lean.py), unless switched off
        # Whether SQS answers, once the service watches (App sets it after start: a command that fails to start
        # says why in its own one line): the first call it leaves unanswered is one ERROR line and /readyz 503,
        # the next answer an INFO line.
        self.watching = False
        self.answering = True
        self._silent_since = 0.0

    async def open(self) -> None:
        s = self._settings
        connections = max(10, s.pollers_per_queue * len(s.queue_urls) + 20)
        # The endpoint comes from the SDK's own settings (AWS_ENDPOINT_URL_SQS for an emulator).
        config = BotoConfig(
            region_name=s.region,
            connect_timeout=CONNECT_TIMEOUT_S,
            # a long poll legitimately takes receive_wait_s; anything much longer is a dead connection
            read_timeout=s.receive_wait_s + 10,
            retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            max_pool_connections=connections,
            # The requests are built here from fixed shapes the tests exercise, and SQS validates them again:
            # botocore's client-side validation was 2.4% of the service's CPU in the benchmark's profile.
            parameter_validation=False,
            # A fixed user agent: botocore otherwise builds it again for every call.
            user_agent=USER_AGENT,
        )
        try:
            core = aiobotocore.session.get_session()
            session = aioboto3.Session(botocore_session=core)
            self._client = await self._stack.enter_async_context(session.client("sqs", config=config))
            if s.sqs_client == "lean":
                meta = self._client.meta
                self._hot = SqsJsonClient(
                    meta.endpoint_url,
                    meta.region_name,
                    await core.get_credentials(),
                    meta.service_model,
                    user_agent=USER_AGENT,
                    connect_timeout_s=CONNECT_TIMEOUT_S,
                    read_timeout_s=s.receive_wait_s + 10,
                    max_attempts=MAX_ATTEMPTS,
                    max_connections=connections,
                    ca_bundle=get_cert_path(core.get_config_variable("ca_bundle") or True),
                )
                await self._hot.open()
                self._stack.push_async_callback(self._hot.close)
        except botocore.exceptions.BotoCoreError as exc:  # a missing profile, a malformed config file, ...
            raise StartupError(
                f"the AWS SDK cannot start ({exc}): check AWS_PROFILE, AWS_CONFIG_FILE and the AWS_* settings"
            ) from exc

    async def close(self) -> None:
        await self._stack.aclose()

    @property
    def endpoint(self) -> str:
        """Where the SQS calls go (AWS's regional endpoint, or AWS_ENDPOINT_URL_SQS)."""
        return str(self._client.meta.endpoint_url) if self._client is not None else "?"

    async def _call(
        self, queue: str, operation: str, read_timeout_s: float | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        self._metrics.sqs_requests.labels(queue, operation).inc()
        bound = (read_timeout_s - 10 if read_timeout_s else 0) + ANSWER_WITHIN_S  # the wait, if any, plus the bound
        try:
            async with asyncio.timeout(bound):
                if self._hot is not None and operation in HOT_OPERATIONS:
                    response = await self._hot.call(operation, kwargs, read_timeout_s)
                else:
                    response = await getattr(self._client, operation)(**kwargs)
        except TimeoutError:
            err: Sqs2pgError = RetryableError(f"no answer from SQS within {bound:g} s", kind="sqs_unavailable")
        except Exception as exc:  # noqa: BLE001 - classified here, once, and raised as such
            err = classify(exc)
        else:
            self._answered()
            return response
        self._metrics.sqs_errors.labels(queue, operation, err.kind).inc()
        if err.kind == "sqs_unavailable":
            self._unanswered(operation, err)
        else:
            self._answered()  # an error is an answer
        raise err

    def _unanswered(self, operation: str, error: Sqs2pgError) -> None:
        if not self.answering or not self.watching:
            return
        self.answering, self._silent_since = False, time.monotonic()
        self._metrics.sqs_up.set(0)
        logs.event(
            logging.ERROR,
            "SQS does not answer",
            "sqs",
            endpoint=self.endpoint,
            operation=operation,
            error_kind=error.kind,
            error=str(error)[:300],
        )

    def _answered(self) -> None:
        if self.answering:
            return
        self.answering = True
        self._metrics.sqs_up.set(1)
        logs.event(
            logging.INFO,
            "SQS answers again",
            "sqs",
            endpoint=self.endpoint,
            silent_s=round(time.monotonic() - self._silent_since, 1),
        )

    async def describe(self, url: str) -> QueueInfo:
        """Check the queue is FIFO and has a FIFO dead-letter queue; QueueError when it cannot be used."""
        name = queue_name(url)
        try:
            attrs = (await self._call(name, "get_queue_attributes", QueueUrl=url, AttributeNames=["All"]))["Attributes"]
        except Sqs2pgError as exc:
            raise QueueError(unusable(url, exc, self.endpoint)) from exc
        policy = redrive_policy(url, attrs)
        # arn:aws:sqs:REGION:ACCOUNT:NAME
        _, _, _, _, account, dlq_name = policy["deadLetterTargetArn"].split(":", 5)
        try:
            dlq_url = (await self._call(name, "get_queue_url", QueueName=dlq_name, QueueOwnerAWSAccountId=account))[
                "QueueUrl"
            ]
        except Sqs2pgError as exc:
            what = f"{url}'s dead-letter queue {policy['deadLetterTargetArn']}"
            raise QueueError(unusable(what, exc, self.endpoint)) from exc
        return queue_info(url, attrs, policy, str(dlq_url))

    async def receive(
        self, url: str, wait_s: int | None = None, visibility_s: int | None = None, max_messages: int | None = None
    ) -> list[dict[str, Any]]:
        """One long poll. The SDK's own retries reuse the attempt id, so on SQS a retried receive returns the
        same messages instead of leaving the first ones in flight unseen."""
        s = self._settings
        wait_s = s.receive_wait_s if wait_s is None else wait_s
        response = await self._call(
            queue_name(url),
            "receive_message",
            read_timeout_s=wait_s + 10,
            QueueUrl=url,
            MaxNumberOfMessages=max_messages or s.receive_batch_size,
            WaitTimeSeconds=wait_s,
            VisibilityTimeout=s.visibility_timeout_s if visibility_s is None else visibility_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            ReceiveRequestAttemptId=uuid.uuid4().hex,
        )
        return response.get("Messages", [])  # type: ignore[no-any-return]

    async def counts(self, url: str) -> dict[str, int]:
        """Approximate numbers of visible, in-flight and delayed messages."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        attrs = (await self._call(queue_name(url), "get_queue_attributes", QueueUrl=url, AttributeNames=names))[
            "Attributes"
        ]
        return {
            "visible": int(attrs.get(names[0], 0)),
            "in_flight": int(attrs.get(names[1], 0)),
            "delayed": int(attrs.get(names[2], 0)),
        }

    async def delete(self, url: str, messages: list[Message]) -> list[tuple[Message, str]]:
        """DeleteMessageBatch (up to 10); returns the messages whose entries failed, with the reason."""
        return await self._batch(url, "delete_message_batch", [(m, {}) for m in messages])

    async def change_visibility(self, url: str, entries: list[tuple[Message, int]]) -> list[tuple[Message, str]]:
        """ChangeMessageVisibilityBatch for up to 10 (message, seconds); returns the failed entries."""
        return await self._batch(
            url, "change_message_visibility_batch", [(m, {"VisibilityTimeout": s}) for m, s in entries]
        )

    async def _batch(
        self, url: str, operation: str, items: list[tuple[Message, dict[str, Any]]]
    ) -> list[tuple[Message, str]]:
        name = queue_name(url)
        by_id = {str(i): m for i, (m, _) in enumerate(items)}
        entries = [{"Id": str(i), "ReceiptHandle": m.receipt_handle, **extra} for i, (m, extra) in enumerate(items)]
        response = await self._call(name, operation, QueueUrl=url, Entries=entries)
        failed = []
        for entry in response.get("Failed", []):
            error = sqs_error(str(entry.get("Code", "failed")), str(entry.get("Message", "")))
            self._metrics.sqs_errors.labels(name, operation, error.kind).inc()
            failed.append((by_id[entry["Id"]], str(error)))
        return failed

    async def send_to_dlq(
        self, dlq_url: str, message: Message, error: Sqs2pgError, trace: deadletter.Attributes | None = None
    ) -> tuple[str, list[str]]:
        """Send a copy of the message to the dead-letter queue, same group and key, with the reason attached.
        Returns how much went with the body (deadletter.py: "full", or less when the queue refused that as too
        large), and the names of its own attributes the copy left out (the dead-letter record keeps them). ``trace``:
        the trace attributes it carries (observe/traces.py), kept as long as the reason is."""
        tried = deadletter.levels(message, error)
        for i, (level, attributes, keep_original) in enumerate(tried):
            try:
                sent = deadletter.merged(message, attributes, keep_original, trace=trace)
                await self._send(dlq_url, message, sent[0], dedup_id=message.message_id)
                return level, sent[1]
            except PermanentError:
                if i == len(tried) - 1:
                    raise
        raise AssertionError("unreachable")

    async def send(
        self,
        url: str,
        message: Message,
        attributes: dict[str, Any],
        dedup_id: str,
        restored: dict[str, Any] | None = None,
        trace: dict[str, Any] | None = None,
    ) -> tuple[str, list[str]]:
        """Send a copy of ``message`` (body, group) to ``url`` with ``attributes`` first, then as many of its own (and
        of ``restored``) as the limit of 10 leaves room for, and the trace context ``trace`` (deadletter.merged).
        Returns the copy's message id and the names left out."""
        merged, left_out = deadletter.merged(message, attributes, True, restored, trace)
        return await self._send(url, message, merged, dedup_id), left_out

    async def _send(self, url: str, message: Message, attributes: dict[str, Any], dedup_id: str) -> str:
        response = await self._call(
            queue_name(url),
            "send_message",
            QueueUrl=url,
            MessageBody=message.queue_body,
            MessageGroupId=message.group_id or "sqs2pg-no-group",
            # the same copy sent twice (a crash between send and delete) is dropped by SQS as a duplicate
            MessageDeduplicationId=dedup_id,
            MessageAttributes=attributes,
        )
        return str(response["MessageId"])


T = TypeVar("T")
BATCH = 10  # entries per SQS batch call


def batches_by_queue(items: Iterable[T], url_of: Callable[[T], str]) -> list[tuple[str, list[T]]]:
    """(queue URL, up to 10 items) for every SQS batch call the items need, each queue's items in their order: the
    shape of DeleteMessageBatch and ChangeMessageVisibilityBatch alike."""
    by_queue: dict[str, list[T]] = {}
    for item in items:
        by_queue.setdefault(url_of(item), []).append(item)
    return [(url, batch[i : i + BATCH]) for url, batch in by_queue.items() for i in range(0, len(batch), BATCH)]
