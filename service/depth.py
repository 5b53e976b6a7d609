"""Sample queue and dead-letter queue depths (and quarantined groups) into gauges, for alerts and dashboards.

SQS reports depths only through GetQueueAttributes (or CloudWatch, which Prometheus does not see). One call
per queue and per dead-letter queue every interval: at the default 15 s that is well under 1 call/s.
"""

from __future__ import annotations

import asyncio
import logging

from . import logs
from .metrics import Metrics
from .sqs import QueueInfo, Sqs
from .store import Store


async def sample_once(sqs: Sqs, metrics: Metrics, queues: list[QueueInfo], failing: set[str]) -> None:
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


async def sample_forever(sqs: Sqs, metrics: Metrics, queues: list[QueueInfo], interval_s: float) -> None:
    """Sample every ``interval_s``, starting one interval from now (App.run took the first sample at start)."""
    failing: set[str] = set()
    while True:
        await asyncio.sleep(interval_s)
        await sample_once(sqs, metrics, queues, failing)


async def sample_quarantines_forever(
    store: Store, metrics: Metrics, queues: list[QueueInfo], interval_s: float
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
