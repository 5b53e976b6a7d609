"""What to do with a message now, given what its transaction did: pure functions, tested without servers."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..errors import NotAttempted, Outcome, PermanentError, Sqs2pgError, classify


@dataclass(frozen=True)
class Decision:
    """What to do with a message now."""

    outcome: Outcome
    visibility_s: int = 0  # for RETRIED: how long the message stays invisible
    error: Sqs2pgError | None = None


def backoff_s(receive_count: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> int:
    """Exponential backoff with "equal jitter", in whole seconds as SQS wants: in [d/2, d], d = base*2^(n-1)."""
    attempt = max(1, receive_count)
    ceiling = min(cap_s, base_s * 2 ** min(attempt - 1, 32))
    delay = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
    return max(1, min(43200, math.ceil(delay))) if ceiling > 0 else 0


def on_failure(
    error: Sqs2pgError, receive_count: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> Decision:
    """A failed message: dead-letter it if the failure is permanent, otherwise leave it for a retry after a backoff."""
    if isinstance(error, PermanentError):
        return Decision(Outcome.DEAD_LETTERED, error=error)
    return Decision(Outcome.RETRIED, visibility_s=backoff_s(receive_count, base_s, cap_s, rng), error=error)


def decide(
    result: Outcome | Exception, receive_count: int, *, abandoned: bool, circuit_open: bool, base_s: float, cap_s: float
) -> Decision | None:
    """What to do with a message given its transaction's result (its outcome, or the exception that failed it).

    None means: hold it at the head of its group and try again in place, without spending a receive (the
    database failed it while the circuit is open, or it was never tried). ``abandoned``: the shutdown deadline
    cut its handling short, so whether it committed is unknown; it is handed back, and idempotency decides
    when it returns. ``circuit_open``: the database is deemed unavailable (after this failure was counted)."""
    if isinstance(result, Outcome):
        return Decision(result)
    if abandoned:
        return Decision(Outcome.RELEASED, error=classify(result))
    if isinstance(result, NotAttempted) or circuit_open:
        return None
    return on_failure(classify(result), receive_count, base_s, cap_s)
