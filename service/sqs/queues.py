"""What a configured queue must be for sqs2pg to consume it (FIFO, with a FIFO dead-letter queue), what is read
of it once at start (QueueInfo), and the one line that says why a queue cannot be used."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import RetryableError, Sqs2pgError, StartupError
from ..message import queue_name


class QueueError(StartupError):
    """A configured queue cannot be consumed (missing, not FIFO, no dead-letter queue, SQS unreachable)."""


@dataclass(frozen=True)
class QueueInfo:
    url: str
    name: str
    arn: str
    dlq_url: str
    max_receive_count: int
    visibility_timeout_s: int
    created: int = 0  # its CreatedTimestamp: a queue made again under the same name numbers its messages afresh


def redrive_policy(url: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """The queue's RedrivePolicy; QueueError when the queue is not FIFO or its dead-letter queue is not."""
    if attrs.get("FifoQueue") != "true":
        raise QueueError(f"queue {url} is not a FIFO queue: sqs2pg consumes FIFO queues only (name ending .fifo)")
    if "RedrivePolicy" not in attrs:
        raise QueueError(
            f"queue {url} has no RedrivePolicy: give it a FIFO dead-letter queue (sqs2pg moves bad messages there)"
        )
    policy: dict[str, Any] = json.loads(attrs["RedrivePolicy"])
    dlq_name = str(policy["deadLetterTargetArn"]).rsplit(":", 1)[-1]
    if not dlq_name.endswith(".fifo"):
        raise QueueError(
            f"queue {url}: its dead-letter queue {dlq_name} is not FIFO: point RedrivePolicy at a FIFO queue"
        )
    return policy


def queue_info(url: str, attrs: dict[str, Any], policy: dict[str, Any], dlq_url: str) -> QueueInfo:
    return QueueInfo(
        url=url,
        name=queue_name(url),
        arn=attrs.get("QueueArn", ""),
        dlq_url=dlq_url,
        max_receive_count=int(policy.get("maxReceiveCount", 0)),
        visibility_timeout_s=int(attrs.get("VisibilityTimeout", 30)),
        created=_created(attrs.get("CreatedTimestamp")),
    )


def _created(value: object) -> int:
    """CreatedTimestamp in whole seconds (SQS gives an integer; moto a float with a fraction), 0 if none."""
    try:
        return int(float(str(value)))
    except ValueError:
        return 0


def unusable(what: str, exc: Sqs2pgError, endpoint: str) -> str:
    """One line: why a queue cannot be used, and what to do about it."""
    if exc.kind in ("sqs_NonExistentQueue", "sqs_QueueDoesNotExist"):
        return f"queue {what} does not exist at {endpoint}: check SQS_QUEUE_URLS, AWS_REGION and AWS_ENDPOINT_URL_SQS"
    if exc.kind == "sqs_credentials":
        return (
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, "
            "or give the task a role"
        )
    if exc.kind in (
        "sqs_AccessDenied",
        "sqs_AccessDeniedException",
        "sqs_InvalidClientTokenId",
        "sqs_SignatureDoesNotMatch",
        "sqs_UnrecognizedClientException",
    ):
        return f"not allowed to use queue {what} ({exc}): check the credentials and the role's SQS permissions"
    if isinstance(exc, RetryableError):
        return f"cannot reach SQS at {endpoint} ({exc}): check AWS_ENDPOINT_URL_SQS, AWS_REGION and the network"
    return f"queue {what}: {exc}"
