"""SIGTERM with messages in flight: exit 0 within the grace period, lose nothing, block no group."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from ..support.helpers import (
    Queues,
    applied_at_least,
    assert_no_loss_no_duplicates_in_order,
    exactly_once_report,
    fault_workload,
    make_settings,
    running,
    start_service,
    wait_until,
)

pytestmark = pytest.mark.integration
GRACE_S = 5
WAIT_S = 5


async def test_sigterm_exits_zero_within_grace_and_loses_nothing(database_url, db, queues: Queues) -> None:
    groups, per_group = 4, 10
    sent = fault_workload(groups, per_group, sleep_s=0.3)
    await queues.send_batch(sent)
    proc = await start_service(
        database_url,
        queues.url,
        HANDLER="tests.handlers:record_apply",
        SQS2PG_SHUTDOWN_GRACE_S=str(GRACE_S),
        # under load the service polls without waiting (it holds messages): a poll in progress when SIGTERM
        # comes is let finish, and what it brings handed back, so nothing is left in flight
        SQS2PG_RECEIVE_WAIT_S=str(WAIT_S),
    )
    try:
        await wait_until(lambda: applied_at_least(db, groups), timeout_s=30)
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), GRACE_S + 10)
        elapsed = time.monotonic() - sent_at
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert elapsed < GRACE_S + 2, f"took {elapsed:.1f} s to stop"

    lines = [json.loads(line) for line in stdout.decode().splitlines()]
    settled = [line for line in lines if line.get("action") == "settle"]
    # Only the messages being handled finished; whatever else was held went back unprocessed.
    assert {line["outcome"] for line in settled} <= {"committed", "released"}
    assert not any("sleep_s" in json.dumps(line) for line in lines), "a message body reached the log"

    # Nothing was left in flight: every message not committed is visible again at once.
    attrs = (
        await queues.client.get_queue_attributes(
            QueueUrl=queues.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

    # A second life finishes the work: every message exactly once, in order per group.
    settings = make_settings(
        database_url, [queues.url], HANDLER="tests.handlers:record_apply", max_concurrent_groups="4"
    )
    restarted = time.monotonic()
    async with running(settings):
        await wait_until(lambda: applied_at_least(db, groups * per_group), timeout_s=30)
        finished_s = time.monotonic() - restarted
    report = await exactly_once_report(
        db,
        sent,
        "SIGTERM under load, then restart",
        stop_s=round(elapsed, 2),
        finished_after_restart_s=round(finished_s, 1),
    )
    assert_no_loss_no_duplicates_in_order(report)
    assert await queues.depth() == 0
