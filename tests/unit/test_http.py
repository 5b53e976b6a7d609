"""The HTTP port cannot be turned against the consumer: a connection limit, a deadline for each request, a pace,
shared answers, and nothing about versions or the database's state for malformed input. No server needed."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sqs2pg.observe import http
from sqs2pg.observe.metrics import Metrics


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[int, dict[str, int]]]:
    monkeypatch.setattr(http, "REQUEST_WITHIN_S", 0.5)
    calls = {"checks": 0, "writes": 0}
    probes = http.Probes()

    async def ready() -> bool:
        calls["checks"] += 1
        return True

    async def writes(key: str) -> dict[str, Any]:
        calls["writes"] += 1
        return {"key": key, "status": "unknown"}

    probes.checks, probes.writes = {"database": ready}, writes
    runner, port = await http.start(Metrics(["q.fifo"]), probes, "127.0.0.1", 0)
    try:
        yield port, calls
    finally:
        await runner.cleanup()


def _get(port: int, path: str) -> tuple[int, str | None, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.headers.get("Server"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Server"), e.read().decode()


async def test_answers_name_no_version_and_a_malformed_key_is_a_bad_request(served: tuple[int, dict[str, int]]) -> None:
    port, calls = served
    for path, status in (("/metrics", 200), ("/healthz", 200), ("/readyz", 200), ("/writes/k-1", 404)):
        code, server, _ = await asyncio.to_thread(_get, port, path)
        assert (code, server) == (status, "sqs2pg"), path
    code, _, body = await asyncio.to_thread(_get, port, "/writes/%00")
    assert code == 400 and "not an idempotency key" in body  # not "the database did not answer"
    assert calls["writes"] == 1  # the malformed key never reached the database


async def test_readyz_is_checked_once_however_many_ask(served: tuple[int, dict[str, int]]) -> None:
    port, calls = served
    answers = await asyncio.gather(*(asyncio.to_thread(_get, port, "/readyz") for _ in range(20)))
    assert {a[0] for a in answers} == {200}
    assert calls["checks"] <= 2  # once per FRESH_S, shared


async def test_a_request_that_trickles_in_is_cut_off(served: tuple[int, dict[str, int]]) -> None:
    port, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished

    async def closed() -> bool:
        try:
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
        except ConnectionError:
            return True
        return await asyncio.wait_for(reader.read(1), 0.2) == b"" if not reader.at_eof() else True

    async def cut_off() -> None:
        while True:
            try:
                if await closed():
                    return
            except TimeoutError:
                pass
            await asyncio.sleep(0.1)

    await asyncio.wait_for(cut_off(), 10)  # REQUEST_WITHIN_S is 0.5 s here
    writer.close()


async def test_connections_beyond_the_limit_are_closed_at_once(served: tuple[int, dict[str, int]]) -> None:
    port, _ = served
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(http.MAX_CONNECTIONS + 10)]

    async def refused(reader: asyncio.StreamReader) -> bool:
        try:
            return await asyncio.wait_for(reader.read(1), 0.2) == b""
        except TimeoutError:
            return False  # still open (its request deadline is 0.5 s away)

    assert sum(await asyncio.gather(*(refused(reader) for reader, _ in conns))) == 10
    for _, writer in conns:
        writer.close()
