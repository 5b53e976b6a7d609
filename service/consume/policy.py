"""What to do with a message now, given what its transaction did: pure functions, tested without servers.

Every rule that picks between applying, trying again and dead-lettering is here, and nowhere else.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..errors import (
    Abandoned,
    Behind,
    DeadLetterFailed,
    NotAttempted,
    Outcome,
    PermanentError,
    RetriesExhausted,
    Sqs2pgError,
)


@dataclass(frozen=True)
class Decision:
    """What to do with a message now. ``outcome`` None: hold it at the head of its group and try it again as soon
    as the database answers, spending nothing (the circuit is open, or it was never tried)."""

    outcome: Outcome | None
    delay_s: float = 0.0  # RETRIED: how long its group waits before it is tried again
    error: Sqs2pgError | None = None
    behind: bool = False  # not tried: back in its group, behind the earlier message that failed


HOLD = Decision(None)
BEHIND = Decision(None, behind=True)


@dataclass(frozen=True)
class Retries:
    """The retry settings: SQS2PG_RETRY_BASE_S, SQS2PG_RETRY_MAX_S, SQS2PG_RETRY_MAX_ATTEMPTS."""

    base_s: float
    cap_s: float
    max_attempts: int


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": in [d/2, d], d = base*2^(attempt-1), capped."""
    ceiling = min(cap_s, base_s * 2 ** min(max(1, attempt) - 1, 32))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2) if ceiling > 0 else 0.0


def visibility_s(seconds: float) -> int:
    """Seconds as SQS's visibility timeout takes them: whole, 0 to 12 hours."""
    return max(0, min(43200, math.ceil(seconds)))


def decide(
    result: Outcome | Sqs2pgError,
    attempts: int,
    retries: Retries,
    *,
    circuit_open: bool,
    rng: random.Random | None = None,
) -> Decision:
    """What to do with a message given its transaction's result: its outcome, or the classified error that failed
    it. ``attempts``: its transient failures so far (this one not counted). ``circuit_open``: the database is
    deemed unavailable (after this failure was counted).

    - committed or duplicate: deleted;
    - cut short by the shutdown deadline (whether it committed is unknown): released, and idempotency decides
      when it comes back;
    - not tried because an earlier message of its group failed in the same transaction: back in its group,
      behind that one, whatever becomes of it (the group's order holds);
    - never tried, or failed while the circuit is open: held at the head of its group, tried again in place
      once the database answers (a failover costs nothing: no receive, no attempt);
    - permanent: dead-lettered, with its reason;
    - transient: tried again in place after a backoff, its group waiting behind it and holding no worker;
      after ``max_attempts`` transient failures, dead-lettered as ``retries_exhausted`` (never left for SQS's
      maxReceiveCount, which moves a message without a reason);
    - its dead-lettering failed (the record or the copy): tried again in place after a backoff, without limit:
      there is no better place for it than where it is.
    """
    if isinstance(result, Outcome):
        return Decision(result)
    if isinstance(result, Abandoned):
        return Decision(Outcome.RELEASED, error=result)
    if isinstance(result, Behind):
        return BEHIND
    if isinstance(result, NotAttempted) or circuit_open:
        return HOLD
    if isinstance(result, DeadLetterFailed):
        return Decision(Outcome.RETRIED, backoff_s(attempts + 1, retries.base_s, retries.cap_s, rng), error=result)
    if isinstance(result, PermanentError):
        return Decision(Outcome.DEAD_LETTERED, error=result)
    if attempts + 1 >= retries.max_attempts:
        exhausted = RetriesExhausted(f"{attempts + 1} attempts failed; the last: {result.kind}: {result}")
        return Decision(Outcome.DEAD_LETTERED, error=exhausted)
    return Decision(Outcome.RETRIED, backoff_s(attempts + 1, retries.base_s, retries.cap_s, rng), error=result)
