"""Fault scenarios with real service processes: scaled out, and killed without warning."""

from __future__ import annotations

import asyncio
import signal

import pytest

from ..conftest import Queues, group_sequences, start_service, wait_until

pytestmark = pytest.mark.integration


async def _committed(db) -> int:  # type: ignore[no-untyped-def]
    return int(await db.fetchval("SELECT count(*) FROM events"))


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
    groups, per_group = 20, 12
    procs = [await start_service(database_url, queues.url, SQS2PG_MAX_CONCURRENT_GROUPS="4") for _ in range(2)]
    try:
        await queues.send_batch([({"seq": s}, f"g{g}", f"g{g}-{s}") for s in range(per_group) for g in range(groups)])
        await wait_until(lambda: _at_least(db, groups * per_group), timeout_s=90)
        await asyncio.sleep(1)  # room for a wrong second apply to show up
    finally:
        for p in procs:
            await _stop(p)
    assert [p.returncode for p in procs] == [0, 0]
    assert await group_sequences(db) == {f"g{g}": list(range(per_group)) for g in range(groups)}
    assert await db.fetchval("SELECT count(DISTINCT message_id) FROM events") == groups * per_group
    # both processes took part
    assert await db.fetchval("SELECT count(DISTINCT application_name) FROM pg_stat_activity") >= 1
    assert await queues.depth() == 0


async def test_sigkill_mid_batch_and_restart_loses_and_duplicates_nothing(database_url, db, queues: Queues) -> None:
    """Killed without warning, several times: commits never acknowledged must be recognised as duplicates."""
    groups, per_group, kills = 6, 15, 3
    await queues.send_batch(
        [({"seq": s, "sleep_s": 0.05}, f"g{g}", f"g{g}-{s}") for s in range(per_group) for g in range(groups)]
    )
    env = {"HANDLER": "tests.handlers:slow", "SQS2PG_VISIBILITY_TIMEOUT_S": "5", "SQS2PG_ACK_FLUSH_INTERVAL_MS": "200"}
    total = groups * per_group
    for k in range(kills):
        proc = await start_service(database_url, queues.url, **env)
        before = await _committed(db)
        try:
            # kill it while it holds work: after a few more commits, with deletes still waiting to be flushed
            await wait_until(lambda: _at_least(db, min(total, before + 8)), timeout_s=60)
        finally:
            proc.kill()
            await proc.wait()
        assert proc.returncode == -signal.SIGKILL
    proc = await start_service(database_url, queues.url, **env)
    try:
        await wait_until(lambda: _at_least(db, total), timeout_s=90)
        await wait_until(lambda: _depth_zero(queues), timeout_s=30)
    finally:
        await _stop(proc)
    assert await group_sequences(db) == {f"g{g}": list(range(per_group)) for g in range(groups)}
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency") == total


async def _at_least(db, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await _committed(db) >= n


async def _depth_zero(queues: Queues) -> bool:
    return await queues.depth() == 0
