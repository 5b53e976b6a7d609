"""The words for what happens to a message: the outcome names in logs are the label values in metrics."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import Sqs2pgError


class Outcome(enum.StrEnum):
    """Log field ``outcome`` and metric label ``outcome`` alike."""

    COMMITTED = "committed"  # applied and committed; deleted from the queue
    DUPLICATE = "duplicate"  # its key was already committed; deleted without applying again
    RETRIED = "retried"  # transient failure; left in the queue with a backoff visibility
    DEAD_LETTERED = "dead_lettered"  # permanent failure; moved to the dead-letter queue
    RELEASED = "released"  # handed back unprocessed (shutdown, or behind a retried message)


@dataclass(frozen=True)
class Decision:
    """What to do with a message now."""

    outcome: Outcome
    visibility_s: int = 0  # for RETRIED: how long the message stays invisible
    error: Sqs2pgError | None = None
