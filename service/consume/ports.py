"""What the runtime needs of PostgreSQL and of SQS, as Protocols: db/store.py's Store and sqs/client.py's Sqs are
the real ones; the unit tests' in-memory fakes (tests/support/fakes.py) are checked against these by mypy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..errors import Outcome, Sqs2pgError
from ..message import Message

if TYPE_CHECKING:
    from ..sqs.queues import QueueInfo


class Database(Protocol):
    """The store: one transaction per batch of messages with their idempotency records, and sqs2pg's own rows."""

    last_success: float  # monotonic time of the last successful transaction

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def apply_many(self, messages: list[Message]) -> list[Outcome | Sqs2pgError]: ...

    async def record_dead_letter(self, message: Message, error: Sqs2pgError) -> bool: ...

    async def dead_letter_copied(self, message: Message) -> None: ...

    async def probe(self, timeout_s: float = 2.0) -> Exception | None: ...

    async def unavailable(self, timeout_s: float = 2.0) -> str | None: ...

    async def ping(self, timeout_s: float = 2.0) -> bool: ...

    async def prune(self, retention_s: float | None, batch_size: int) -> int | None: ...

    async def quarantined_counts(self) -> dict[str, int]: ...

    async def write_status(self, key: str) -> dict[str, Any]: ...

    async def queue_orders(self) -> dict[tuple[str, int], str]: ...

    async def judged(self, queue_name: str, queue_created: int, verdict: str) -> None: ...


class Queues(Protocol):
    """SQS as the runtime uses it: describe a queue, receive, delete, change visibility, copy to a DLQ, count."""

    watching: bool  # the service runs: SQS not answering is logged and makes /readyz 503
    answering: bool  # SQS answered the last call (an error is an answer; no answer within the bound is not)

    @property
    def endpoint(self) -> str: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def describe(self, url: str) -> QueueInfo: ...

    async def receive(
        self, url: str, wait_s: int | None = None, visibility_s: int | None = None, max_messages: int | None = None
    ) -> list[dict[str, Any]]: ...

    async def counts(self, url: str) -> dict[str, int]: ...

    async def delete(self, url: str, messages: list[Message]) -> list[tuple[Message, str]]: ...

    async def change_visibility(self, url: str, entries: list[tuple[Message, int]]) -> list[tuple[Message, str]]: ...

    async def send_to_dlq(
        self, dlq_url: str, message: Message, error: Sqs2pgError, trace: dict[str, Any] | None = None
    ) -> tuple[str, list[str]]: ...
