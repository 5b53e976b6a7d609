"""Sample queue and dead-letter queue depths into gauges, for alerts and dashboards.

SQS reports depths only through GetQueueAttributes (or CloudWatch, which Prometheus does not see). One call
per queue and per dead-letter queue every interval: at the default 15 s that is well under 1 call/s.
"""

from __future__ import annotations

import asyncio
import logging

from . import logs
from .metrics import Metrics
from .sqs import QueueInfo, Sqs


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
    failing: set[str] = set()
    while True:
        await sample_once(sqs, metrics, queues, failing)
        await asyncio.sleep(interval_s)
