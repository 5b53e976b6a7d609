"""Prune expired idempotency records, one replica at a time, in small batches."""

from __future__ import annotations

import asyncio
import logging
import random

from . import logs
from .metrics import Metrics
from .store import Store


async def prune_forever(store: Store, metrics: Metrics, retention_s: float, interval_s: float, batch_size: int) -> None:
    # Start at a random point of the interval so replicas started together do not all try at once.
    await asyncio.sleep(random.uniform(0, min(interval_s, 60)))
    while True:
        try:
            deleted = await store.prune(retention_s, batch_size)
        except Exception as exc:  # noqa: BLE001 - pruning is housekeeping: log, never stop the service
            logs.event(logging.WARNING, "prune failed", "prune", error=f"{type(exc).__name__}: {exc}"[:300])
        else:
            if deleted is None:
                logs.event(logging.DEBUG, "prune skipped: another replica holds the lock", "prune")
            else:
                metrics.pruned.inc(deleted)
                logs.event(logging.INFO, "pruned idempotency records", "prune", deleted=deleted)
        await asyncio.sleep(interval_s)
