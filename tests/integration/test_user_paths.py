"""The paths a user takes first: a stop with the default long poll, readiness before the first poll returns, a
backlog drained on plain moto without a long-poll stall, a database missing at start, the dead-letter tools
pointed at the wrong queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import asyncpg
import pytest

from sqs2pg.message import queue_name

from ..support.helpers import (
    REGION,
    Queues,
    http_get,
    make_settings,
    metric,
    running,
    start_service,
    wait_until,
    with_database,
)
from ..support.servers import ROOT, free_port, port_answers

pytestmark = pytest.mark.integration


async def test_sigterm_during_an_idle_long_poll_exits_zero_within_10_s_and_ready_comes_first(
    database_url, queues: Queues
) -> None:
    port = free_port()
    started = time.monotonic()
    # The defaults: a 5 s long poll and a 20 s grace period; `docker stop` waits 10 s before SIGKILL. The stop lets
    # the poll in flight finish (cut short, the server would hand the next messages to a connection nobody reads).
    proc = await start_service(
        database_url, queues.url, HTTP_PORT=str(port), SQS2PG_RECEIVE_WAIT_S="5", SQS2PG_SHUTDOWN_GRACE_S="20"
    )
    try:

        async def ready() -> bool:
            return (await asyncio.to_thread(http_get, port, "/readyz"))[0] == 200

        await wait_until(ready, timeout_s=30)
        # Ready while the first poll of an empty queue is still out (ready means: database answers, queues
        # described; not "a poll came back").
        ready_after_s = time.monotonic() - started

        async def receive_calls() -> list[str]:
            # (the series exists at 0 from the start: wait for the first call to be counted)
            return [
                line
                for line in (await asyncio.to_thread(http_get, port, "/metrics"))[1].splitlines()
                if line.startswith("sqs2pg_sqs_requests_total") and 'operation="receive_message"' in line
            ]

        async def polling() -> bool:
            return any(float(line.split()[-1]) > 0 for line in await receive_calls())

        await wait_until(polling, timeout_s=10)
        polls = await receive_calls()
        # Ready came while the first long poll was still out: had readiness waited for a poll to come back, the
        # second one would be counted by now. (Not a time bound: a loaded machine takes seconds to start Python.)
        assert float(polls[0].split()[-1]) == 1.0, (ready_after_s, polls)

        stop_sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        stop_s = time.monotonic() - stop_sent
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert stop_s < 10, f"stop took {stop_s:.1f} s"
    assert b'"event": "stopped"' in out


@pytest.fixture
async def plain_moto() -> AsyncIterator[str]:
    """moto's own server as users start it (python -m moto.server), without the tests' launcher."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until(lambda: _answers(url), timeout_s=30)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def _answers(url: str) -> bool:
    return (await asyncio.to_thread(http_get, int(url.rsplit(":", 1)[1]), "/moto-api/"))[0] == 200


async def test_a_backlog_drains_on_plain_moto_without_a_long_poll_stall(
    database_url, db, plain_moto, monkeypatch
) -> None:
    """300 messages over 7 groups waiting before the start, default long poll (20 s). A long poll begun while
    sqs2pg itself holds every group would not return on plain moto when its own deletes land: the service
    must not start one then. The commits must come without a gap anywhere near the 20 s of such a stall."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", plain_moto)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", REGION)):
        monkeypatch.setenv(name, value)
    async with aioboto3.Session().client("sqs", region_name=REGION, endpoint_url=plain_moto) as client:
        dlq = (await client.create_queue(QueueName="drain-dlq.fifo", Attributes={"FifoQueue": "true"}))["QueueUrl"]
        arn = (await client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"]))["Attributes"]["QueueArn"]
        url = (
            await client.create_queue(
                QueueName="drain.fifo",
                Attributes={
                    "FifoQueue": "true",
                    "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 10}),
                },
            )
        )["QueueUrl"]
        queues = Queues(client, url, dlq)
        sent = [({"seq": s}, f"g{g}", f"d-{g}-{s}") for s in range(43) for g in range(7)][:300]
        await queues.send_batch(sent)

        settings = make_settings(database_url, [url], receive_wait_s="20", max_concurrent_groups="16")
        async with running(settings):

            async def drained() -> bool:
                return await db.fetchval("SELECT count(*) FROM events") == len(sent)

            await wait_until(drained, timeout_s=120)
        gaps = await db.fetch(
            "SELECT extract(epoch FROM committed_at - lag(committed_at) OVER (ORDER BY id))::float AS gap FROM events"
        )
        longest = max(r["gap"] or 0.0 for r in gaps)
        assert longest < 10, f"no commit for {longest:.1f} s while messages waited: a long-poll stall"
        # Plain moto's DeleteMessage rebuilds the queue without a lock, so a delete racing another can be undone
        # (docker/moto's launcher exists for that): what is left must be messages already committed, which a
        # consumer only deletes as duplicates, never applies again.
        left = await queues.receive_all(url)
        committed = {r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM events")}
        assert {m["Attributes"]["MessageDeduplicationId"] for m in left} <= committed


async def test_a_database_missing_at_start_is_said_at_once_and_opens_the_circuit_until_it_exists(
    postgres_admin_url, template_database, queues: Queues, caplog
) -> None:
    name = f"sqs2pg_late_{uuid.uuid4().hex[:8]}"
    url = with_database(postgres_admin_url, name)
    await queues.send({"seq": 0}, "g", "late-0")
    caplog.set_level(logging.INFO, logger="sqs2pg")
    settings = make_settings(url, [queues.url])
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        async with running(settings) as app:
            # SQLSTATE 3D000 at start: one ERROR line that names it, the circuit open, not ready, nothing received.
            errors = [r for r in caplog.records if r.levelno == logging.ERROR and getattr(r, "action", "") == "breaker"]
            assert errors and "does not exist" in errors[0].error and "DATABASE_URL" in errors[0].error, errors
            assert metric(app, "sqs2pg_circuit_open") == 1
            assert app.http_port is not None
            status, body = await asyncio.to_thread(http_get, app.http_port, "/readyz")
            assert status == 503 and json.loads(body)["database"] is False
            assert metric(app, "sqs2pg_received_messages_total", queue=_name(queues.url)) == 0

            # The database appears (migrated): the probe finds it, the circuit closes, the message is applied,
            # received once.
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
            await wait_until(lambda: _committed(app, queues.url), timeout_s=30)
            assert metric(app, "sqs2pg_circuit_open") == 0
            assert metric(app, "sqs2pg_received_messages_total", queue=_name(queues.url)) == 1
            assert metric(app, "sqs2pg_messages_total", queue=_name(queues.url), outcome="retried") == 0
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _name(url: str) -> str:
    return queue_name(url)


async def _committed(app: Any, url: str) -> bool:
    return metric(app, "sqs2pg_messages_total", queue=_name(url), outcome="committed") >= 1


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sqs2pg", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.mark.one_sqs  # wording: the same whatever the server
async def test_dlq_tools_and_check_on_unusable_queues_say_why_in_one_line(database_url, queues: Queues) -> None:
    client = queues.client
    no_dlq = (
        await client.create_queue(QueueName=f"nodlq-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true"})
    )["QueueUrl"]
    missing = queues.url.rsplit("/", 1)[0] + f"/missing-{uuid.uuid4().hex[:8]}.fifo"
    for url, expected in ((no_dlq, "has no RedrivePolicy"), (missing, "does not exist")):
        for command in (["dlq", "stats"], ["dlq", "peek"], ["dlq", "redrive"]):
            result = await asyncio.to_thread(_cli, *command, SQS_QUEUE_URLS=url)
            assert result.returncode == 2, result
            assert result.stderr.count("\n") == 1 and expected in result.stderr and "Traceback" not in result.stderr
    # check: one line per check, each queue named once.
    checked = await asyncio.to_thread(_cli, "check", DATABASE_URL=database_url, SQS_QUEUE_URLS=f"{queues.url},{no_dlq}")
    assert checked.returncode == 1
    failed = [line for line in checked.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].count(no_dlq) == 1, checked.stdout


async def test_dlq_stats_takes_a_queue_and_peek_shows_the_original_message_id(database_url, queues: Queues) -> None:
    sent = await queues.client.send_message(
        QueueUrl=queues.url, MessageBody="not json", MessageGroupId="g", MessageDeduplicationId="bad-0"
    )
    async with running(make_settings(database_url, [queues.url])) as app:
        await wait_until(lambda: _dead(app, queues.url))
    stats = await asyncio.to_thread(_cli, "dlq", "stats", "--queue", _name(queues.url), SQS_QUEUE_URLS=queues.url)
    assert stats.returncode == 0 and "1 waiting" in stats.stdout, stats
    peek = await asyncio.to_thread(_cli, "dlq", "peek", SQS_QUEUE_URLS=queues.url)
    assert peek.returncode == 0, peek
    line = next(line for line in peek.stdout.splitlines() if "group=g" in line)
    ids = dict(part.split("=", 1) for part in line.split() if part.startswith(("id=", "dlq_id=")))
    # The id the service logged when it dead-lettered it, beside the DLQ copy's own.
    assert ids["id"] == sent["MessageId"] and ids["dlq_id"] != ids["id"], line


async def _dead(app: Any, url: str) -> bool:
    return metric(app, "sqs2pg_messages_total", queue=_name(url), outcome="dead_lettered") >= 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda url: url.replace("postgres@", "nosuchrole@", 1), "check the user"),
        (lambda url: url + "?bogus_setting=1", "remove it"),
    ],
)
@pytest.mark.one_sqs  # wording: the same whatever the server
async def test_database_settings_that_waiting_cannot_fix_stop_run_with_one_line(
    database_url, queues: Queues, change, expected
) -> None:
    """A role that does not exist, a URL parameter the server rejects: exit 2 with one line (an orchestrator
    then restarts the task, which reads a rotated secret again), instead of waiting forever not ready."""
    result = await asyncio.to_thread(
        _cli, "run", DATABASE_URL=change(database_url), SQS_QUEUE_URLS=queues.url, HTTP_PORT="0"
    )
    assert result.returncode == 2, result
    assert (
        result.stderr.count("\n") == 1
        and "the database refuses these settings" in result.stderr
        and expected in result.stderr
    )


@pytest.mark.skipif(not port_answers(5432), reason="scripts/run-local.sh needs a PostgreSQL on 127.0.0.1:5432")
async def test_run_local_stops_the_service_cleanly_then_its_emulator_on_sigterm_to_the_script() -> None:
    """README's first command, stopped as a process manager (or `kill PID`) stops it: the script hands the
    service one SIGTERM (Ctrl-C in its terminal takes the same path), the service stops cleanly, the script exits
    0 and takes its emulator with it. Nothing is left holding a port."""
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQS2PG_", "AWS_", "SQS_", "DATABASE_URL"))}
    proc = await asyncio.create_subprocess_exec(
        str(ROOT / "scripts" / "run-local.sh"),
        env={**env, "HTTP_PORT": str(http_port)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    out: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            out.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read())
    try:
        await wait_until(lambda: _said(out, "AWS_ENDPOINT_URL_SQS="), timeout_s=180)  # the script's hint
        endpoint = next(line for line in out if "AWS_ENDPOINT_URL_SQS=" in line)
        sqs_port = int(endpoint.split("AWS_ENDPOINT_URL_SQS=http://127.0.0.1:")[1].split()[0])
        await wait_until(lambda: _said(out, '"event": "receiving"'), timeout_s=60)  # the service consumes
        assert port_answers(http_port) and port_answers(sqs_port)
        # /healthz on an idle service: ok, and the loop's lag is small wherever in its 1 s tick the probe lands
        for _ in range(6):
            status, text = await asyncio.to_thread(http_get, http_port, "/healthz")
            assert status == 200 and json.loads(text)["status"] == "ok", text
            assert json.loads(text)["loop_lag_s"] < 0.5, text
            await asyncio.sleep(0.25)  # spreads the probes over more than one tick
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, "".join(out[-20:])
        await asyncio.wait_for(reader, 10)
    finally:
        if proc.returncode is None:  # the test failed: kill the script, and the service in its own session
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            for group in [proc.pid, *map(int, children)]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
            await proc.wait()
        reader.cancel()
    stops = [json.loads(line)["event"] for line in out if '"action": "stop"' in line]
    assert stops == ["stopping", "stopped"], "".join(out[-20:])
    try:
        await wait_until(lambda: _closed(http_port, sqs_port), timeout_s=30)
    except AssertionError:  # say which port, and what holds it
        held = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout if shutil.which("ss") else ""
        open_ports = [p for p in (http_port, sqs_port) if port_answers(p)]
        message = f"ports still answering: {open_ports} (service {http_port}, SQS {sqs_port})\n{held}"
        raise AssertionError(message) from None


def test_local_sqs_stops_on_a_sigterm_the_kernel_hands_to_one_of_its_other_threads() -> None:
    """A process-wide signal goes to any thread that does not block it. The local SQS's main thread must still
    wake and stop: twice in CI its emulator outlived run-local.sh, waiting with no timeout for a SIGTERM that one
    of moto's threads had taken (reproduced: it then never stopped)."""
    code = (
        "import signal, sys, threading, time\n"
        "from sqs2pg.sqs import local\n"
        "def poke():\n"  # once serve() handles SIGTERM (it installs its handler last)
        "    while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:\n"
        "        time.sleep(0.05)\n"
        "    moto = next(t for t in threading.enumerate() if t.name == 'moto')\n"
        "    signal.pthread_kill(moto.ident, signal.SIGTERM)\n"
        "threading.Thread(target=poke, daemon=True).start()\n"
        "sys.exit(local.serve('127.0.0.1', 0, ['q.fifo'], 25))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]


async def _said(out: list[str], text: str) -> bool:
    return any(text in line for line in out)


async def _closed(*ports: int) -> bool:
    return not any(port_answers(p) for p in ports)
