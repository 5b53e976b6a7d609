"""No password leaves sqs2pg: a sentinel password, in every form DATABASE_URL can carry one, is looked for in
everything the service and the commands print while the database refuses them (a database that does not
exist: the service logs its breaker lines, the commands their one-line errors)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from ..support.helpers import Queues, run_cli, start_service, wait_until

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
