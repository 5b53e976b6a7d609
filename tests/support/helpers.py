"""What tests share beyond fixtures (those stay in tests/conftest.py): settings, running the app, waiting for
a condition, the fault suite's workload and report, the queues a test sends to."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from sqs2pg import config
from sqs2pg.config import Settings
from sqs2pg.consume.app import App
from sqs2pg.db.store import Store
from sqs2pg.handler import Handler, insert_event
from sqs2pg.message import Message, queue_name

from .checks import exactly_once
from .servers import ROOT

REGION = "us-east-1"


def with_database(url: str, dbname: str) -> str:
    """url with its database name replaced; the query string (sslmode, ...) kept."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


async def _value(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


def through_local_port(url: str, port: int) -> str:
    """url reached through 127.0.0.1:port (a pooler or a proxy in front of its server): user, database and query
    kept."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}127.0.0.1:{port}"))


def migrate_by_cli(url: str) -> None:
    """`sqs2pg migrate` on url, as a user runs it (the benchmark and the chaos soak prepare their databases so)."""
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "sqs2pg"), "migrate"],
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        stdout=subprocess.DEVNULL,
    )


async def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m sqs2pg ARGS` as a user runs it, with the test's environment plus env; waits for it to exit."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sqs2pg",
        *args,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), timeout_s)
    assert proc.returncode is not None
    return subprocess.CompletedProcess(list(args), proc.returncode, out.decode(), err.decode())


def http_get(port: int, path: str) -> tuple[int, str]:
    """GET http://127.0.0.1:port/path: (status, body), or (0, "") when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


async def admin_execute(admin_url: str, statement: str, within_s: float = 60) -> None:
    """``statement`` on a connection of its own, tried again while the server does not answer (restarting under
    a fault test, say) for up to ``within_s``: a fixture's CREATE and DROP never depend on a connection it
    opened minutes before."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            admin = await asyncpg.connect(admin_url, timeout=5)
            try:
                await admin.execute(statement)
                return
            finally:
                await admin.close()
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@asynccontextmanager
async def scratch_database(admin_url: str, template: str | None = None) -> AsyncIterator[str]:
    """The URL of a new database (empty, or a copy of template), dropped afterwards, also when the server
    restarted in between."""
    name = f"sqs2pg_t_{uuid.uuid4().hex[:12]}"
    await admin_execute(admin_url, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield with_database(admin_url, name)
    finally:
        await admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Queues:
    """A FIFO queue and its FIFO dead-letter queue, made for one test."""

    client: Any
    url: str
    dlq_url: str

    @property
    def name(self) -> str:
        return queue_name(self.url)

    async def send(
        self, body: str | dict[str, Any], group: str, dedup: str, attributes: dict[str, Any] | None = None
    ) -> None:
        await self.client.send_message(
            QueueUrl=self.url,
            MessageBody=body if isinstance(body, str) else json.dumps(body),
            MessageGroupId=group,
            MessageDeduplicationId=dedup,
            MessageAttributes=attributes or {},
        )

    async def send_batch(self, entries: list[tuple[dict[str, Any], str, str]]) -> None:
        """Send (body, group, dedup id) tuples, 10 per SendMessageBatch, in the given order."""
        for i in range(0, len(entries), 10):
            chunk = entries[i : i + 10]
            result = await self.client.send_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(j), "MessageBody": json.dumps(b), "MessageGroupId": g, "MessageDeduplicationId": d}
                    for j, (b, g, d) in enumerate(chunk)
                ],
            )
            assert not result.get("Failed"), result["Failed"]

    async def receive_all(self, url: str, wait_s: int = 1) -> list[dict[str, Any]]:
        """Drain a queue (deleting what it reads): every message with its attributes."""
        out: list[dict[str, Any]] = []
        while True:
            r = await self.client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait_s,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            )
            msgs = r.get("Messages", [])
            if not msgs:
                return out
            out.extend(msgs)
            await self.client.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)]
            )

    async def depth(self, url: str | None = None) -> int:
        """Visible plus in-flight messages."""
        attrs = (
            await self.client.get_queue_attributes(
                QueueUrl=url or self.url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


# Fast settings for tests: short long polls, short backoffs, a short grace period.
TEST_KNOBS = {
    "SQS2PG_RECEIVE_WAIT_S": "1",
    "SQS2PG_RETRY_BASE_S": "1",
    "SQS2PG_RETRY_MAX_S": "2",
    "SQS2PG_SHUTDOWN_GRACE_S": "5",
    "SQS2PG_MAX_CONCURRENT_GROUPS": "8",
    "SQS2PG_PRUNE_INTERVAL_S": "3600",
}


def make_settings(database_url: str, queue_urls: list[str], **knobs: str) -> Settings:
    env = {
        "DATABASE_URL": database_url,
        "SQS_QUEUE_URLS": ",".join(queue_urls),
        "AWS_REGION": REGION,
        "HTTP_PORT": "0",
        **TEST_KNOBS,
        **{("SQS2PG_" + k.upper() if k.islower() else k): v for k, v in knobs.items()},
    }
    return config.load(env)


@asynccontextmanager
async def running(target: Settings | App) -> AsyncIterator[App]:
    """Run an App (or one made from settings) in this event loop; stop it cleanly (and check it stopped
    cleanly) on exit."""
    app = target if isinstance(target, App) else App(target)
    settings = app.settings
    task = asyncio.create_task(app.run(), name="app under test")
    started = asyncio.create_task(app.started())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED, timeout=30)
    if task.done():
        started.cancel()
        task.result()  # raises what made it fail to start
    assert started.done(), "app did not start within 30 s"
    try:
        yield app
    finally:
        app.stop()
        await asyncio.wait_for(task, settings.shutdown_grace_s + 15)


async def wait_until(predicate: Any, timeout_s: float = 30, interval_s: float = 0.1) -> None:
    """Poll a predicate (async, or plain) until true; fail the test at the timeout."""
    deadline = time.monotonic() + timeout_s
    while not await _value(predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


async def start_service(database_url: str, queue_url: str, **env: str) -> asyncio.subprocess.Process:
    """Start ``python -m sqs2pg run`` as users do, in its own process (stdout: JSON log lines)."""
    full_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "SQS_QUEUE_URLS": queue_url,
        "HTTP_PORT": "0",
        **{k: v for k, v in TEST_KNOBS.items() if k not in env},
        **env,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sqs2pg",
        "run",
        cwd=ROOT,
        env=full_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def applied_count(db: asyncpg.Connection) -> int:
    """Distinct messages applied to the fault suite's table ``applied``."""
    return int(await db.fetchval("SELECT count(DISTINCT idempotency_key) FROM applied"))


async def applied_at_least(db: asyncpg.Connection, n: int) -> bool:
    return await applied_count(db) >= n


async def queue_empty(queues: Queues) -> bool:
    return await queues.depth() == 0


async def group_sequences(db: asyncpg.Connection) -> dict[str, list[int]]:
    """Each group's sequence numbers (body "seq") in commit order."""
    rows = await db.fetch("SELECT message_group_id AS g, (body->>'seq')::int AS s FROM events ORDER BY id")
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r["g"], []).append(r["s"])
    return out


def fault_workload(groups: int, per_group: int, sleep_s: float = 0.0) -> list[tuple[dict[str, Any], str, str]]:
    """The fault suite's messages: sequence numbers per group, interleaved across groups, unique keys."""
    run = uuid.uuid4().hex[:6]
    extra = {"sleep_s": sleep_s} if sleep_s else {}
    return [({"seq": s, **extra}, f"g{g}", f"{run}-g{g}-{s}") for s in range(per_group) for g in range(groups)]


async def exactly_once_report(
    db: asyncpg.Connection, sent: list[tuple[dict[str, Any], str, str]], scenario: str, **extra: Any
) -> dict[str, Any]:
    """Count what the fault suite promises, from table ``applied`` (which has no unique key):
    duplicates applied, messages lost, order violations. Written to $FAULT_REPORT_FILE when set."""
    rows = await db.fetch("SELECT idempotency_key AS k, message_group_id AS g, seq FROM applied ORDER BY id")
    check = exactly_once(((r["k"], r["g"], r["seq"]) for r in rows), {d for _, _, d in sent})
    report = {
        "scenario": scenario,
        "sent": len(sent),
        "committed": check.committed,
        "duplicates_applied": check.duplicates,
        "lost": check.lost,
        "order_violations": check.order_violations,
        **extra,
    }
    if check.out_of_order_groups:
        report["out_of_order_groups"] = check.out_of_order_groups
    write_report(report)
    return report


def write_report(report: dict[str, Any]) -> None:
    """Append one scenario's figures to $FAULT_REPORT_FILE (scripts/fault_report.py reads it)."""
    if path := os.environ.get("FAULT_REPORT_FILE"):
        report.setdefault("sqs", os.environ.get("TEST_SQS_SERVER_NAME", "?"))
        with open(path, "a") as f:
            f.write(json.dumps(report) + "\n")


def assert_no_loss_no_duplicates_in_order(report: dict[str, Any]) -> None:
    assert (report["lost"], report["duplicates_applied"], report["order_violations"]) == (0, 0, 0), report


async def scrape_metrics(app: App) -> str:
    """/metrics over HTTP, as Prometheus scrapes it."""

    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{app.http_port}/metrics", timeout=5) as response:
            return response.read().decode()

    return await asyncio.to_thread(get)


def metric(app: App, name: str, **labels: str) -> float:
    value = app.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def create_test_tables(url: str) -> None:
    from ..handlers import APPLIED_TABLE

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(APPLIED_TABLE)
    finally:
        await conn.close()


# The queue a message comes from in tests of the store alone (no SQS server): only its URL and name are read.
STORE_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo"


def queued(key: str, body: object = None, group: str | None = None) -> Message:
    """A message as received from STORE_QUEUE, its deduplication id ``key`` (its idempotency key), its body JSON
    of ``body`` (text as it is; by default {"k": key}), in group ``group`` (by default its own)."""
    body = {"k": key} if body is None else body
    return Message(
        queue_url=STORE_QUEUE,
        queue_name=queue_name(STORE_QUEUE),
        message_id=f"id-{key}",
        receipt_handle=f"rh-{key}",
        body=body if isinstance(body, str) else json.dumps(body),
        group_id=group or f"g-{key}",
        deduplication_id=key,
        receive_count=1,
        sent_timestamp_ms=None,
        attributes={},
    )


async def open_store(database_url: str, handler: Handler = insert_event) -> Store:
    """The store sqs2pg runs, open on ``database_url``, applying with ``handler``."""
    store = Store(make_settings(database_url, [STORE_QUEUE]), handler)
    await store.open()
    return store
