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


async def sample_once(sqs: Sqs, metrics: Metrics, queues: list[QueueInfo]) -> None:
    for q in queues:
        try:
            counts = await sqs.counts(q.url)
            dlq = await sqs.counts(q.dlq_url)
        except Exception as exc:  # noqa: BLE001 - a missed sample is not a reason to stop consuming
            logs.event(logging.DEBUG, "depth sample failed", "depth", queue=q.name, error=f"{type(exc).__name__}: {exc}"[:300])
            continue
        for state, n in counts.items():
            metrics.queue_messages.labels(q.name, state).set(n)
        metrics.dead_letter_messages.labels(q.name).set(dlq["visible"] + dlq["in_flight"] + dlq["delayed"])


async def sample_forever(sqs: Sqs, metrics: Metrics, queues: list[QueueInfo], interval_s: float) -> None:
    while True:
        await sample_once(sqs, metrics, queues)
        await asyncio.sleep(interval_s)
