"""Shared fixtures: real PostgreSQL and a real SQS-compatible server, fresh database and queues per test.

Where the servers come from (the README says the same):
- PostgreSQL: ``TEST_DATABASE_URL`` if set (an admin URL; each test gets its own database created from a
  migrated template); else, when a Docker engine answers, a testcontainers PostgreSQL; else the local server
  at postgresql://postgres@127.0.0.1:5432/postgres.
- SQS: ``TEST_SQS_ENDPOINT_URL`` if set; else each server named in ``TEST_SQS_SERVERS`` (default
  ``moto,fauxqs``), started here on a free loopback port, and every integration test runs once per server.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import aioboto3
import asyncpg
import pytest

from sqs2pg import config, migrate
from sqs2pg.app import App
from sqs2pg.config import Settings

from .support import servers

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
REGION = "us-east-1"


def _docker_engine_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
    elif _docker_engine_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as pg:
            yield pg.get_connection_url()
    else:
        yield LOCAL_POSTGRES


ROOT = Path(__file__).resolve().parents[1]
# The emulators the integration tests run against. They differ exactly where consumers go wrong: moto hands
# out up to ten messages of a group at once, fauxqs only one.
SQS_SERVERS = [s.strip() for s in os.environ.get("TEST_SQS_SERVERS", "moto,fauxqs").split(",") if s.strip()]


def _start_server(kind: str, port: int) -> subprocess.Popen[bytes]:
    if kind == "moto":
        return servers.start_moto(port)
    if kind == "fauxqs":
        if not servers.fauxqs_installed():
            pytest.skip("fauxqs is not installed (scripts/bootstrap.sh installs it when npm is available)")
        return servers.start_fauxqs(port)
    raise ValueError(f"unknown SQS server {kind!r} in TEST_SQS_SERVERS")


@pytest.fixture(scope="session", params=SQS_SERVERS)
def sqs_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    """An SQS-compatible server over HTTP; AWS_* variables point the SDK at it for this test session."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION
    )
    if url := os.environ.get("TEST_SQS_ENDPOINT_URL"):
        os.environ["AWS_ENDPOINT_URL_SQS"] = url
        os.environ["TEST_SQS_SERVER_NAME"] = url
        yield url
        return
    os.environ["TEST_SQS_SERVER_NAME"] = request.param
    port = servers.free_port()
    proc = _start_server(request.param, port)
    url = f"http://127.0.0.1:{port}"
    try:
        servers.wait_for_port(port, proc)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(f"{request.param} server did not start") from None
    os.environ["AWS_ENDPOINT_URL_SQS"] = url
    yield url
    proc.terminate()
    proc.wait(10)


def _with_database(url: str, dbname: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


@pytest.fixture(scope="session")
async def template_database(postgres_admin_url: str) -> AsyncIterator[str]:
    """A database migrated to head once per session; each test clones it."""
    name = f"sqs2pg_tmpl_{os.getpid()}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        settings = make_settings(_with_database(postgres_admin_url, name), ["http://x/1/q.fifo"])
        await asyncio.to_thread(migrate.upgrade, settings)
        await _create_test_tables(_with_database(postgres_admin_url, name))
        yield name
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _create_test_tables(url: str) -> None:
    from .handlers import APPLIED_TABLE

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(APPLIED_TABLE)
    finally:
        await conn.close()


@pytest.fixture
async def database_url(postgres_admin_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"sqs2pg_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        yield _with_database(postgres_admin_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
async def sqs_client(sqs_endpoint: str) -> AsyncIterator[Any]:
    async with aioboto3.Session().client("sqs", region_name=REGION, endpoint_url=sqs_endpoint) as client:
        yield client


@dataclass
class Queues:
    """A FIFO queue and its FIFO dead-letter queue, made for one test."""

    client: Any
    url: str
    dlq_url: str

    async def send(self, body: str | dict[str, Any], group: str, dedup: str, attributes: dict[str, Any] | None = None) -> None:
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
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s,
                MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"],
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
        attrs = (await self.client.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        ))["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
async def queues(sqs_client: Any) -> Queues:
    suffix = uuid.uuid4().hex[:10]
    dlq = await sqs_client.create_queue(QueueName=f"dlq-{suffix}.fifo", Attributes={"FifoQueue": "true"})
    arn = (await sqs_client.get_queue_attributes(QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"]))["Attributes"]["QueueArn"]
    q = await sqs_client.create_queue(
        QueueName=f"q-{suffix}.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 10}),
        },
    )
    return Queues(sqs_client, q["QueueUrl"], dlq["QueueUrl"])


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
async def running(settings: Settings) -> AsyncIterator[App]:
    """Run an App in this event loop; stop it cleanly (and check it stopped cleanly) on exit."""
    app = App(settings)
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
    """Poll an async predicate until true; fail the test at the timeout."""
    deadline = time.monotonic() + timeout_s
    while not await predicate():
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
        sys.executable, "-m", "sqs2pg", "run", cwd=ROOT, env=full_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def applied_count(db: asyncpg.Connection) -> int:
    """Distinct messages applied to the fault suite's table ``applied``."""
    return int(await db.fetchval("SELECT count(DISTINCT idempotency_key) FROM applied"))


async def applied_at_least(db: asyncpg.Connection, n: int) -> bool:
    return await applied_count(db) >= n


async def queue_empty(queues: "Queues") -> bool:
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


async def exactly_once_report(db: asyncpg.Connection, sent: list[tuple[dict[str, Any], str, str]], scenario: str, **extra: Any) -> dict[str, Any]:
    """Count what the fault suite promises, from table ``applied`` (which has no unique key):
    duplicates applied, messages lost, order violations. Written to $FAULT_REPORT_FILE when set."""
    rows = await db.fetch("SELECT idempotency_key AS k, message_group_id AS g, seq FROM applied ORDER BY id")
    keys = [r["k"] for r in rows]
    sent_keys = {d for _, _, d in sent}
    by_group: dict[str, list[int]] = {}
    for r in rows:
        by_group.setdefault(r["g"], []).append(r["seq"])
    out_of_order = [(g, seqs) for g, seqs in by_group.items() if any(b <= a for a, b in zip(seqs, seqs[1:]))]
    violations = sum(1 for _, seqs in out_of_order for a, b in zip(seqs, seqs[1:]) if b <= a)
    report = {
        "scenario": scenario,
        "sent": len(sent),
        "committed": len(set(keys) & sent_keys),
        "duplicates_applied": len(keys) - len(set(keys)),
        "lost": len(sent_keys - set(keys)),
        "order_violations": violations,
        **extra,
    }
    if out_of_order:
        report["out_of_order_groups"] = {g: seqs for g, seqs in out_of_order[:3]}
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
