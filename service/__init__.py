"""sqs2pg: apply SQS FIFO messages to PostgreSQL exactly once, in order per message group."""

from .errors import AlreadyApplied, InvalidMessage, PermanentError, RetryableError
from .handler import Handler
from .message import Message

__all__ = ["AlreadyApplied", "Handler", "InvalidMessage", "Message", "PermanentError", "RetryableError"]
