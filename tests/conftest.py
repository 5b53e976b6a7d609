"""Shared fixtures: real PostgreSQL and a real SQS-compatible server, fresh database and queues per test.

Where the servers come from (the README says the same):
- PostgreSQL: ``TEST_DATABASE_URL`` if set (an admin URL; each test gets its own database created from a
  migrated template); else, when a Docker engine answers, a testcontainers PostgreSQL; else the local server
  at postgresql://postgres@127.0.0.1:5432/postgres.
- SQS: ``TEST_SQS_ENDPOINT_URL`` if set; else each server named in ``TEST_SQS_SERVERS`` (default
  ``moto,fauxqs``), started here on a free loopback port, and every integration test runs once per server
  (those marked ``one_sqs``, which do not depend on the server's behaviour, on the first one only).

Tiers (docs/testing.md): `scripts/test.sh` runs everything but the tests marked ``long`` (the emulators'
self-tests, which test the servers rather than sqs2pg); `scripts/test.sh --long` runs those alone. CI runs both.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aioboto3
import asyncpg
import pytest

from sqs2pg.db import migrate

from .support import servers
from .support.helpers import (
    REGION,
    Queues,
    admin_execute,
    create_test_tables,
    make_settings,
    scratch_database,
    with_database,
)
from .support.queues import create_fifo_queue

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="run only the long tier (tests marked long)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    long_tier = config.getoption("--long")
    keep, drop = [], []
    for item in items:
        if (
            (item.get_closest_marker("long") is not None) != long_tier
            or item.get_closest_marker("one_sqs") is not None
            and _sqs_param(item) not in (None, SQS_SERVERS[0])
        ):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _sqs_param(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("sqs_endpoint")


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


@pytest.fixture(scope="session")
async def template_database(postgres_admin_url: str) -> AsyncIterator[str]:
    """A database migrated to head once per session; each test clones it."""
    name = f"sqs2pg_tmpl_{os.getpid()}"
    await admin_execute(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin_execute(postgres_admin_url, f'CREATE DATABASE "{name}"')
    try:
        settings = make_settings(with_database(postgres_admin_url, name), ["http://x/1/q.fifo"])
        await asyncio.to_thread(migrate.upgrade, settings)
        await create_test_tables(with_database(postgres_admin_url, name))
        yield name
    finally:
        await admin_execute(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(postgres_admin_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own."""
    async with scratch_database(postgres_admin_url, template_database) as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
async def sqs_client(sqs_endpoint: str) -> AsyncIterator[Any]:
    async with aioboto3.Session().client("sqs", region_name=REGION, endpoint_url=sqs_endpoint) as client:
        yield client


@pytest.fixture
async def queues(sqs_client: Any) -> Queues:
    """A FIFO queue and its FIFO dead-letter queue of this test's own."""
    url, dlq_url = await create_fifo_queue(sqs_client, f"q-{uuid.uuid4().hex[:10]}")
    return Queues(sqs_client, url, dlq_url)
