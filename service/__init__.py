"""sqs2pg: apply SQS FIFO messages to PostgreSQL exactly once, in order per message group.

The public API for handler authors: ``from sqs2pg import Message, InvalidMessage, RetryableError``.
"""

from .errors import AlreadyApplied, InvalidMessage, PermanentError, RetryableError
from .handler import Handler
from .message import Message

__version__ = "0.2.0"

__all__ = ["AlreadyApplied", "Handler", "InvalidMessage", "Message", "PermanentError", "RetryableError", "__version__"]
