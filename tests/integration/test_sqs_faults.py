"""SQS trouble between the service and the server: delays, 5xx, throttling, dropped connections, lost responses."""

from __future__ import annotations

import pytest

from ..support.helpers import (
    Queues,
    applied_at_least,
    assert_no_loss_no_duplicates_in_order,
    exactly_once_report,
    fault_workload,
    make_settings,
    metric,
    queue_empty,
    running,
    wait_until,
)
from ..support.sqs_fault_proxy import FaultPlan, start_proxy

pytestmark = pytest.mark.integration


async def test_sqs_faults_through_a_proxy_lose_and_duplicate_nothing(
    database_url, db, queues: Queues, sqs_endpoint, monkeypatch
) -> None:
    sent = fault_workload(groups=6, per_group=15)
    await queues.send_batch(sent)
    plan = FaultPlan()
    runner, proxy_url = await start_proxy(sqs_endpoint, plan)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy_url)  # only the service goes through the proxy
    try:
        # A short visibility timeout, so a receive whose response was lost comes back quickly.
        settings = make_settings(
            database_url,
            [queues.url],
            HANDLER="tests.handlers:record_apply",
            visibility_timeout_s="5",
            receive_wait_s="1",
        )
        async with running(settings) as app:
            await wait_until(lambda: applied_at_least(db, len(sent)), timeout_s=120)
            q = queues.name
            dead = metric(app, "sqs2pg_messages_total", queue=q, outcome="dead_lettered")
            plan.enabled = False  # let the final deletes and the shutdown through cleanly
            await wait_until(lambda: queue_empty(queues), timeout_s=60)
    finally:
        await runner.cleanup()
    injected = {k: v for k, v in plan.counts.items() if not k.startswith("pass")}
    lost_deletes = plan.counts["lose_response:DeleteMessageBatch"]
    report = await exactly_once_report(
        db,
        sent,
        "SQS faults via proxy (delay, 5xx, throttle, drop, lost response)",
        dead_lettered=int(dead),
        faults_injected=sum(injected.values()),
        lost_delete_responses=lost_deletes,
    )
    assert_no_loss_no_duplicates_in_order(report)
    assert dead == 0
    assert sum(injected.values()) >= 10, plan.counts  # the proxy really did get in the way
    assert plan.counts["lose_response:ReceiveMessage"] + plan.counts["lose_response:DeleteMessageBatch"] >= 1, (
        plan.counts
    )
