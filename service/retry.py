"""What to do with a message now: a pure decision, testable without any server."""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass

from .errors import PermanentError, Sqs2pgError


class Outcome(str, enum.Enum):
    """The words used in logs (``outcome``) and metrics (label ``outcome``) alike."""

    COMMITTED = "committed"  # applied and committed; deleted from the queue
    DUPLICATE = "duplicate"  # its key was already committed; deleted without applying again
    RETRIED = "retried"  # transient failure; left in the queue with a backoff visibility
    DEAD_LETTERED = "dead_lettered"  # permanent failure; moved to the dead-letter queue
    RELEASED = "released"  # handed back unprocessed (shutdown, or behind a retried message)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    visibility_s: int = 0  # for RETRIED: how long the message stays invisible
    error: Sqs2pgError | None = None


def backoff_s(receive_count: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> int:
    """Exponential backoff with "equal jitter", in whole seconds as SQS wants: in [d/2, d], d = base*2^(n-1)."""
    attempt = max(1, receive_count)
    ceiling = min(cap_s, base_s * 2 ** min(attempt - 1, 32))
    delay = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
    return max(1, min(43200, math.ceil(delay))) if ceiling > 0 else 0


def decide(error: Sqs2pgError, receive_count: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> Decision:
    """A failed message: dead-letter it if the failure is permanent, otherwise retry it after a backoff."""
    if isinstance(error, PermanentError):
        return Decision(Outcome.DEAD_LETTERED, error=error)
    return Decision(Outcome.RETRIED, visibility_s=backoff_s(receive_count, base_s, cap_s, rng), error=error)
