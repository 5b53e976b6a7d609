"""sqs2pg: apply SQS FIFO messages to PostgreSQL exactly once, in order per message group.

The public API for handler authors: ``from sqs2pg import Message, InvalidMessage, RetryableError``; for
producers: ``from sqs2pg import Producer`` (producer.py).
"""

from typing import Any

from .errors import AlreadyApplied, InvalidMessage, PermanentError, RetryableError
from .handler import Handler
from .message import Message
from .version import __version__

__all__ = [
    "AlreadyApplied",
    "Handler",
    "InvalidMessage",
    "Message",
    "PermanentError",
    "Producer",
    "ProducerError",
    "RetryableError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The producer pulls in the AWS SDK: imported when asked for, not by every handler module.
    if name in ("Producer", "ProducerError", "Write", "Sent", "Failed"):
        from . import producer

        return getattr(producer, name)
    raise AttributeError(f"module 'sqs2pg' has no attribute {name!r}")
