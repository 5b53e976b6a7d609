"""Housekeeping beside the work, each a loop the app runs as a named task:

- the visibility heartbeat: every held message stays invisible to other consumers for as long as sqs2pg
  holds it;
- depth sampling: queue and dead-letter queue depths (and quarantined groups) into gauges, for alerts and
  dashboards. SQS reports depths only through GetQueueAttributes (or CloudWatch, which Prometheus does not
  see): one call per queue and per dead-letter queue every interval, well under 1 call/s at the default 15 s;
- retention: expired idempotency records dropped a day at a time (db/retention.py), one replica at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ..observe import logs
from ..observe.metrics import Metrics
from ..sqs.queues import QueueInfo
from .dispatcher import Dispatcher
from .ports import Database, Queues
from .settle import Settler


def interval_s(visibility_timeout_s: int, fraction: float) -> float:
    """How often to look: twice per remaining margin, so a slow SQS call still lands in time."""
    return max(0.2, min(10.0, visibility_timeout_s * (1 - fraction) / 2))


async def heartbeat(dispatcher: Dispatcher, settler: Settler, visibility_timeout_s: int, fraction: float) -> None:
    """Extend a message once ``fraction`` of its visibility has passed (waiting or being handled)."""
    margin = visibility_timeout_s * (1 - fraction)
    while True:
        await asyncio.sleep(interval_s(visibility_timeout_s, fraction))
        now = time.monotonic()
        due = [m for m in dispatcher.held_messages() if m.visible_until - now <= margin]
        if due:
            # Bounded: a hung call must not hold up the next round while the margin runs out. The next round
            # tries again; a message that lapses comes back and is then a duplicate.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(settler.extend(due, visibility_timeout_s), margin / 2)


async def sample_once(sqs: Queues, metrics: Metrics, queues: list[QueueInfo], failing: set[str]) -> None:
    for q in queues:
        try:
            counts = await sqs.counts(q.url)
            dlq = await sqs.counts(q.dlq_url)
        except Exception as exc:  # noqa: BLE001 - a missed sample is not a reason to stop consuming
            if q.name not in failing:  # once per streak: the gauges keep their last values meanwhile
                failing.add(q.name)
                logs.event(
                    logging.WARNING,
                    "depth sample failed: queue gauges are stale",
                    "depth",
                    queue=q.name,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                )
            continue
        if q.name in failing:
            failing.discard(q.name)
            logs.event(logging.INFO, "depth sample works again", "depth", queue=q.name)
        for state, n in counts.items():
            metrics.queue_messages.labels(q.name, state).set(n)
        metrics.dead_letter_messages.labels(q.name).set(dlq["visible"] + dlq["in_flight"] + dlq["delayed"])


async def sample_forever(sqs: Queues, metrics: Metrics, queues: list[QueueInfo], interval_s: float) -> None:
    """Sample every ``interval_s``, starting one interval from now (App.run took the first sample at start)."""
    failing: set[str] = set()
    while True:
        await asyncio.sleep(interval_s)
        await sample_once(sqs, metrics, queues, failing)


async def sample_quarantines_forever(
    store: Database, metrics: Metrics, queues: list[QueueInfo], interval_s: float
) -> None:
    """sqs2pg_quarantined_groups, per queue, from the table every replica shares."""
    while True:
        try:
            counts = await store.quarantined_counts()
        except Exception:  # noqa: BLE001 - the database being away is reported elsewhere; keep the last values
            counts = None
        if counts is not None:
            for q in queues:
                metrics.quarantined_groups.labels(q.name).set(counts.get(q.name, 0))
        await asyncio.sleep(interval_s)


async def prune_forever(
    store: Database, metrics: Metrics, retention_s: float | None, interval_s: float, batch_size: int
) -> None:
    # A pass at start (today's partition, and what expired while no replica ran), then one per interval; replicas
    # started together each try, and the pruning lock lets one through.
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
