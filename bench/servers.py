"""The servers a benchmark run uses: fauxqs (started here unless an endpoint is given) and PostgreSQL."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from tests.support.helpers import migrate_by_cli, with_database
from tests.support.pgbouncer import PgBouncer
from tests.support.pgbouncer import binary as pgbouncer_binary
from tests.support.servers import ROOT, fauxqs_installed, free_port, start_fauxqs, start_moto, wait_for_port

REGION = "us-east-1"
__all__ = ["ROOT", "free_port", "wait_for_port"]


@contextmanager
def fauxqs(endpoint: str | None) -> Iterator[str]:
    """An SQS endpoint: the one given, or a fauxqs started for this run (scripts/bootstrap.sh installs it)."""
    if endpoint:
        yield endpoint
        return
    if not fauxqs_installed():
        raise SystemExit("fauxqs is not installed: run scripts/bootstrap.sh (needs npm)")
    port = free_port()
    with _serving(start_fauxqs(port), port) as url:
        yield url


@contextmanager
def moto_launcher() -> Iterator[str]:
    """An SQS endpoint: the project's moto launcher (`sqs2pg local-sqs`), which hands out up to 10 messages of a
    group per receive as SQS does, started for this run."""
    port = free_port()
    with _serving(start_moto(port), port) as url:
        yield url


@contextmanager
def pgbouncer(db_url: str, server_connections: int) -> Iterator[str]:
    """db_url through Debian's PgBouncer in transaction mode with that many server connections (the test kit's)."""
    if pgbouncer_binary() is None:
        raise SystemExit("the pgbouncer series needs PgBouncer (Debian: apt-get install pgbouncer)")
    bouncer = PgBouncer(db_url, pool_size=server_connections)
    bouncer.start()
    try:
        yield bouncer.url(db_url)
    finally:
        bouncer.stop()


@contextmanager
def delayed(endpoint: str, delay_ms: float) -> Iterator[str]:
    """The endpoint behind bench/delay_proxy.py, which adds delay_ms to every request (its own process)."""
    port = free_port()
    upstream = endpoint.split("://", 1)[1].rstrip("/")
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "-m",
            "bench.delay_proxy",
            "--upstream",
            upstream,
            "--delay-ms",
            str(delay_ms),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with _serving(proc, port) as url:
        yield url


@contextmanager
def otlp_receiver() -> Iterator[dict[str, str]]:
    """An OTLP/HTTP trace receiver in its own process (tests/support/otlp_receiver.py: every span decoded, then
    dropped), and the OTEL_* settings that send a service's spans to it."""
    port = free_port()
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "tests.support.otlp_receiver", str(port), "/dev/null"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with _serving(proc, port) as url:
        yield {"OTEL_EXPORTER_OTLP_ENDPOINT": url}


@contextmanager
def _serving(proc: subprocess.Popen[bytes], port: int) -> Iterator[str]:
    """The URL of a server process once it listens on port; the process stopped afterwards."""
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_SQS": endpoint,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }


async def fresh_database(admin_url: str, dbname: str) -> str:
    """Drop and create the benchmark database, then migrate it with `sqs2pg migrate`."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await conn.close()
    url = with_database(admin_url, dbname)
    migrate_by_cli(url)
    conn = await asyncpg.connect(url)
    try:
        # the database ceiling's table: what one INSERT of an event costs, with no idempotency record
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_ceiling (LIKE events INCLUDING ALL)")
        # the naive consumer's table: the same shape, so it pays the same index costs
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_naive (LIKE events INCLUDING ALL)")
        # the peer's tables (bench/peer.py): the same work as sqs2pg, an idempotency record and an event
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_peer (LIKE events INCLUDING ALL)")
        # (sqs2pg_idempotency is partitioned, with no key of its own: the peer's keys are one table with one)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_peer_keys"
            " (LIKE sqs2pg_idempotency INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (idempotency_key))"
        )
    finally:
        await conn.close()
    return url


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False
