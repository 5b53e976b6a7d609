"""Fault scenarios with real service processes: scaled out, and killed without warning.

Every scenario applies through tests.handlers:record_apply into table ``applied``, which has no unique key,
so a message applied twice shows as two rows: exactly-once rests on the idempotency record alone here.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from ..support.helpers import (
    Queues,
    applied_at_least,
    applied_count,
    assert_no_loss_no_duplicates_in_order,
    exactly_once_report,
    fault_workload,
    queue_empty,
    start_service,
    wait_until,
)

pytestmark = pytest.mark.integration
HANDLER = "tests.handlers:record_apply"


async def _stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> None:
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()


async def test_two_processes_on_one_queue_apply_each_message_once_in_order(database_url, db, queues: Queues) -> None:
    """A scaled-out ECS service: two tasks consume the same queue."""
    sent = fault_workload(groups=20, per_group=12)
    procs = [
        await start_service(database_url, queues.url, HANDLER=HANDLER, SQS2PG_MAX_CONCURRENT_GROUPS="4")
        for _ in range(2)
    ]
    try:
        await queues.send_batch(sent)
        await wait_until(lambda: applied_at_least(db, len(sent)), timeout_s=90)
        await asyncio.sleep(1)  # room for a wrong second apply to show up
    finally:
        for p in procs:
            await _stop(p)
    assert [p.returncode for p in procs] == [0, 0]
    report = await exactly_once_report(db, sent, "two processes on one queue")
    assert_no_loss_no_duplicates_in_order(report)
    assert await queues.depth() == 0


async def test_sigkill_mid_batch_and_restart_loses_and_duplicates_nothing(database_url, db, queues: Queues) -> None:
    """Killed without warning, several times: commits never acknowledged must be recognised as duplicates."""
    sent = fault_workload(groups=6, per_group=15, sleep_s=0.05)
    await queues.send_batch(sent)
    env = {"HANDLER": HANDLER, "SQS2PG_VISIBILITY_TIMEOUT_S": "5", "SQS2PG_ACK_FLUSH_INTERVAL_MS": "200"}
    for _ in range(3):
        proc = await start_service(database_url, queues.url, **env)
        before = await applied_count(db)
        try:
            # kill it while it holds work: after a few more commits, with deletes still waiting to be flushed
            await wait_until(lambda before=before: applied_at_least(db, min(len(sent), before + 8)), timeout_s=60)
        finally:
            proc.kill()
            await proc.wait()
        assert proc.returncode == -signal.SIGKILL
    killed_at = time.monotonic()
    proc = await start_service(database_url, queues.url, **env)
    try:
        await wait_until(lambda: applied_at_least(db, len(sent)), timeout_s=90)
        done_s = time.monotonic() - killed_at
        await wait_until(lambda: queue_empty(queues), timeout_s=30)
    finally:
        await _stop(proc)
    report = await exactly_once_report(
        db, sent, "SIGKILL mid-batch x3, restart", finished_after_last_kill_s=round(done_s, 1)
    )
    assert_no_loss_no_duplicates_in_order(report)
