"""sqs2pg behind a transaction pooler (Debian's PgBouncer, pool_mode=transaction, 4 server connections), as RDS
Proxy multiplexes: with SQS2PG_DB_POOLER=transaction two service processes apply every message once and in order
and retention still prunes; without it, the pooler's refusal is one line that names the setting."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from ..support.helpers import (
    Queues,
    applied_at_least,
    assert_no_loss_no_duplicates_in_order,
    exactly_once_report,
    fault_workload,
    run_cli,
    start_service,
    wait_until,
)
from ..support.pgbouncer import PgBouncer, binary

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(binary() is None, reason="needs PgBouncer (Debian: apt-get install pgbouncer)"),
]
HANDLER = "tests.handlers:record_apply"


@pytest.fixture
def pooler(postgres_admin_url: str) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(postgres_admin_url, pool_size=4)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


async def _stop(proc: asyncio.subprocess.Process) -> tuple[bytes, bytes]:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()


async def _expired_gone(db: Any) -> bool:
    return int(await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency WHERE idempotency_key LIKE 'old-%'")) == 0


async def test_two_processes_through_a_transaction_pooler_apply_each_message_once_in_order(
    database_url: str, db: Any, queues: Queues, pooler: PgBouncer
) -> None:
    # records past the retention, for the pruner to find through the pooler
    await db.execute(
        "INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, committed_at)"
        " SELECT 'old-' || i, '\\x00'::bytea, 'q', 'm', now() - interval '8 days' FROM generate_series(1, 2500) i"
    )
    sent = fault_workload(groups=20, per_group=15)
    env = {
        "HANDLER": HANDLER,
        "SQS2PG_DB_POOLER": "transaction",
        "SQS2PG_MAX_CONCURRENT_GROUPS": "8",
        "SQS2PG_PRUNE_INTERVAL_S": "1",
        "SQS2PG_PRUNE_BATCH_SIZE": "500",
    }
    procs = [await start_service(pooler.url(database_url), queues.url, **env) for _ in range(2)]
    try:
        await queues.send_batch(sent)
        await wait_until(lambda: applied_at_least(db, len(sent)), timeout_s=120)
        await wait_until(lambda: _expired_gone(db), timeout_s=60)
        await asyncio.sleep(1)  # room for a wrong second apply to show up
    finally:
        outputs = [await _stop(p) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    report = await exactly_once_report(db, sent, "two processes through PgBouncer (transaction mode)")
    assert_no_loss_no_duplicates_in_order(report)
    logs = b"".join(out for out, _ in outputs).decode()
    assert "prepared statement" not in logs and "unsupported startup parameter" not in logs
    assert await queues.depth() == 0


async def test_without_the_setting_the_poolers_refusal_is_one_line_naming_it(
    database_url: str, queues: Queues, pooler: PgBouncer
) -> None:
    env = {"DATABASE_URL": pooler.url(database_url), "SQS_QUEUE_URLS": queues.url}
    checked = await run_cli("check", env=env)
    assert checked.returncode == 1, checked
    line = next(x for x in checked.stdout.splitlines() if x.startswith("FAIL"))
    assert line.startswith("FAIL  database reachable"), checked.stdout
    assert "statement_timeout" in line and "SQS2PG_DB_POOLER=transaction" in line, line
    # the service does not wait for a server that will never take these settings: it says so and exits 2
    ran = await run_cli("run", env={**env, "HTTP_PORT": "0"}, timeout_s=60)
    assert ran.returncode == 2, ran
    assert "SQS2PG_DB_POOLER=transaction" in ran.stderr + ran.stdout
    # and with it, check passes through the same pooler
    fixed = await run_cli("check", env={**env, "SQS2PG_DB_POOLER": "transaction"})
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
