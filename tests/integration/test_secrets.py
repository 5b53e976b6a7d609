"""No password leaves sqs2pg: a sentinel password, in every form DATABASE_URL can carry one, is looked for in
everything the service and the commands print while the database refuses them (a database that does not
exist: the service logs its breaker lines, the commands their one-line errors)."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import asyncpg
import pytest

from ..support.helpers import Queues, http_get, make_settings, metric, run_cli, running, start_service, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.one_sqs]  # what is printed does not depend on the server

SENTINEL = "Sentinel-pw-3141"
FORMS = {
    "after the user": f"postgresql://postgres:{SENTINEL}@127.0.0.1:5432/sqs2pg_no_such_db",
    "a password parameter": f"postgresql://postgres@127.0.0.1:5432/sqs2pg_no_such_db?password={SENTINEL}",
    "percent-encoded": "postgresql://postgres:" + SENTINEL.replace("-", "%2D") + "@127.0.0.1:5432/sqs2pg_no_such_db",
}


@pytest.mark.parametrize("form", FORMS)
async def test_a_password_appears_in_no_log_line_and_no_command_output(form: str, queues: Queues) -> None:
    url = FORMS[form]
    env = {"DATABASE_URL": url, "SQS_QUEUE_URLS": queues.url, "SQS2PG_LOG_LEVEL": "DEBUG"}
    printed: list[str] = []
    proc = await start_service(url, queues.url, SQS2PG_LOG_LEVEL="DEBUG")
    assert proc.stdout is not None
    try:
        # the service starts with the circuit open and says why: the "starting" line and the breaker's ERROR line
        async def said_unavailable() -> bool:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            printed.append(line)
            return "database unavailable" in line

        await wait_until(said_unavailable, timeout_s=60, interval_s=0)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    printed += [out.decode(), err.decode()]
    for command in (["check"], ["migrate"], ["status", "some-key"], ["dlq", "stats"], ["quarantine", "list"]):
        result = await run_cli(*command, env=env)
        printed += [result.stdout, result.stderr]
    everything = "\n".join(printed)
    assert "database unavailable" in everything and "***" in everything
    assert SENTINEL not in everything and SENTINEL.replace("-", "%2D") not in everything


async def test_a_rejected_rows_values_reach_no_log_line_dlq_copy_record_or_status(
    database_url: str, queues: Queues, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL's DETAIL quotes the failing row, and a handler's exception the value it choked on: the reasons
    sqs2pg writes keep the SQLSTATE, the constraint, the table and the error's type, never those values."""
    await queues.send({"id": "A-1", "email": "alice@example.com", "age": -1}, "c", "row-1")
    await queues.send({"id": "A-2", "amount": "12abc-secret"}, "c", "row-2")
    settings = make_settings(database_url, [queues.url], HANDLER="tests.handlers:leaky", SQS2PG_WRITES_ENDPOINT="on")
    caplog.set_level(logging.INFO, logger="sqs2pg")
    async with running(settings) as app:
        await wait_until(lambda: _dead_lettered(app, queues.name, 2), timeout_s=30)
        assert app.http_port is not None
        statuses = [(await asyncio.to_thread(http_get, app.http_port, f"/writes/{k}"))[1] for k in ("row-1", "row-2")]
    peek = await run_cli("dlq", "peek", env={"DATABASE_URL": database_url, "SQS_QUEUE_URLS": queues.url})
    conn = await asyncpg.connect(database_url)
    try:
        reasons = [r["reason"] for r in await conn.fetch("SELECT reason FROM sqs2pg_idempotency ORDER BY 1")]
    finally:
        await conn.close()
    copies = await queues.receive_all(queues.dlq_url)
    errors = [m["MessageAttributes"]["sqs2pg_error"]["StringValue"] for m in copies]
    logged = [str(getattr(r, "error", "")) for r in caplog.records]
    everything = "\n".join([*statuses, peek.stdout, *reasons, *errors, *logged])
    assert "alice@example.com" not in everything and "12abc-secret" not in everything, everything
    assert any("23514" in r and "customers_age_positive" in r and "customers" in r for r in reasons), reasons
    assert any(r.startswith("ValueError") for r in reasons), reasons


async def _dead_lettered(app: Any, queue: str, n: int) -> bool:
    return metric(app, "sqs2pg_messages_total", queue=queue, outcome="dead_lettered") >= n
