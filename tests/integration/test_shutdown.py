"""SIGTERM with messages in flight: exit 0 within the grace period, lose nothing, block no group."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from ..conftest import Queues, group_sequences, make_settings, running, start_service, wait_until

pytestmark = pytest.mark.integration
GRACE_S = 5
WAIT_S = 5


async def test_sigterm_exits_zero_within_grace_and_loses_nothing(database_url, db, queues: Queues) -> None:
    groups, per_group = 4, 10
    await queues.send_batch(
        [({"seq": s, "sleep_s": 0.3}, f"g{g}", f"g{g}-{s}") for s in range(per_group) for g in range(groups)]
    )
    proc = await start_service(
        database_url, queues.url,
        HANDLER="tests.handlers:slow",
        SQS2PG_SHUTDOWN_GRACE_S=str(GRACE_S),
        # a long poll is in progress when SIGTERM comes: it is left to return, and what it brings handed back
        SQS2PG_RECEIVE_WAIT_S=str(WAIT_S),
    )
    try:
        await wait_until(lambda: _count_at_least(db, groups), timeout_s=30)
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), GRACE_S + 10)
        elapsed = time.monotonic() - sent_at
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert elapsed < max(GRACE_S, WAIT_S) + 2, f"took {elapsed:.1f} s to stop"

    lines = [json.loads(line) for line in stdout.decode().splitlines()]
    settled = [line for line in lines if line.get("action") == "settle"]
    # Only the messages being handled finished; whatever else was held went back unprocessed.
    assert {line["outcome"] for line in settled} <= {"committed", "released"}
    assert not any("sleep_s" in json.dumps(line) for line in lines), "a message body reached the log"

    # Nothing was left in flight: every message not committed is visible again at once.
    attrs = (await queues.client.get_queue_attributes(
        QueueUrl=queues.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    ))["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

    # A second life finishes the work: every message exactly once, in order per group.
    settings = make_settings(database_url, [queues.url], HANDLER="tests.handlers:slow", max_concurrent_groups="4")
    async with running(settings):
        await wait_until(lambda: _count_at_least(db, groups * per_group), timeout_s=30)
    assert await group_sequences(db) == {f"g{g}": list(range(per_group)) for g in range(groups)}
    assert await queues.depth() == 0


async def _count_at_least(db, n: int) -> bool:  # type: ignore[no-untyped-def]
    return int(await db.fetchval("SELECT count(*) FROM events")) >= n
