"""The lean client for the hot SQS calls (sqs_json.py) against real emulators: the same results and the same
errors as the SDK, botocore's retry rules, and credentials that rotate under it."""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from sqs2pg.errors import PermanentError, RetryableError
from sqs2pg.message import Message
from sqs2pg.observe.metrics import Metrics
from sqs2pg.sqs.client import Sqs

from ..support.helpers import Queues, make_settings
from ..support.sqs_fault_proxy import FaultPlan, start_proxy

pytestmark = pytest.mark.integration


async def _sqs(database_url: str, queue_url: str, client: str) -> Sqs:
    sqs = Sqs(make_settings(database_url, [queue_url], sqs_client=client), Metrics())
    await sqs.open()
    return sqs


def _fields(m: Message) -> tuple[Any, ...]:
    return (
        m.body,
        m.group_id,
        m.deduplication_id.split("-", 1)[0] if m.deduplication_id else None,
        m.receive_count,
        m.attributes,
    )


async def test_the_lean_client_receives_deletes_and_fails_exactly_as_the_sdk(database_url, queues: Queues) -> None:
    attributes = {
        "idempotency_key": {"DataType": "String", "StringValue": "k-é"},
        "amount": {"DataType": "Number", "StringValue": "12.5"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe\xff"},
    }
    seen: dict[str, tuple[Any, ...]] = {}
    for client in ("lean", "aioboto3"):
        await queues.send({"client": "either"}, "g", f"d-{client}", attributes)
        sqs = await _sqs(database_url, queues.url, client)
        try:
            raw = await sqs.receive(queues.url, wait_s=1, visibility_s=30)
            assert len(raw) == 1, raw
            message = Message.from_sqs(queues.url, raw[0], 30)
            seen[client] = _fields(message)
            assert await sqs.change_visibility(queues.url, [(message, 5)]) == []
            assert await sqs.delete(queues.url, [message]) == []
            # A receipt handle the server does not know: a failed entry (moto), with the same reason kind.
            stale = Message(**{**message.__dict__, "receipt_handle": "not-a-receipt-handle"})
            failed = await sqs.delete(queues.url, [stale])
            seen[client + " failed delete"] = tuple(reason.split(":", 1)[0] for _, reason in failed)
            # A queue that does not exist: the same exception, classified the same.
            with pytest.raises(PermanentError) as info:
                await sqs.receive(queues.url.rsplit("/", 1)[0] + "/missing-queue.fifo", wait_s=0)
            seen[client + " missing queue"] = (type(info.value), info.value.kind)
        finally:
            await sqs.close()
    assert seen["lean"] == seen["aioboto3"]
    assert seen["lean"][2] == "d" and seen["lean"][4]["blob"]["BinaryValue"] == b"\x00\x01\xfe\xff"
    assert seen["lean failed delete"] == seen["aioboto3 failed delete"]  # (fauxqs accepts any handle: both empty)
    assert seen["lean missing queue"] == seen["aioboto3 missing queue"]
    assert await queues.depth() == 0


async def test_throttling_is_retried_by_botocores_rules_then_raised_as_the_sdk_raises_it(
    database_url, queues: Queues, sqs_endpoint, monkeypatch
) -> None:
    plan = FaultPlan(delay=0, error_500=0, throttle=1.0, drop=0, lose_response=0)
    runner, proxy = await start_proxy(sqs_endpoint, plan)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy)
    try:
        sqs = await _sqs(database_url, queues.url, "lean")
        try:
            with pytest.raises(RetryableError) as info:
                await sqs.receive(queues.url, wait_s=0)
            assert info.value.kind == "sqs_throttled"
            # standard mode: the first try and two retries
            assert plan.counts["throttle:ReceiveMessage"] == 3, plan.counts
            # 5xx and dropped connections half the time: retried until one gets through
            plan.throttle, plan.error_500, plan.drop = 0.0, 0.35, 0.15
            await queues.send({"n": 1}, "g", "retried-1")
            for _ in range(5):
                raw = await sqs.receive(queues.url, wait_s=1)
                if raw:
                    break
            assert raw and json.loads(raw[0]["Body"]) == {"n": 1}
            assert plan.counts["error_500:ReceiveMessage"] + plan.counts["drop:ReceiveMessage"] >= 1, plan.counts
        finally:
            await sqs.close()
    finally:
        await runner.cleanup()


@pytest.fixture
async def rotating_credentials(monkeypatch) -> AsyncIterator[list[str]]:
    """An ECS-style container credentials endpoint on loopback: every answer is a new key pair that expires
    in 12 minutes, inside botocore's advisory refresh window, so the SDK asks again at its next use."""
    issued: list[str] = []

    async def creds(_: web.Request) -> web.Response:
        key = f"ASIAROTATING{len(issued):08d}"
        issued.append(key)
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=12)
        return web.json_response(
            {
                "AccessKeyId": key,
                "SecretAccessKey": "secret-" + key,
                "Token": "token-" + key,
                "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )

    app = web.Application()
    app.router.add_get("/creds", creds)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{sock.getsockname()[1]}/creds")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    try:
        yield issued
    finally:
        await runner.cleanup()


async def test_credentials_that_rotate_mid_run_are_picked_up_by_the_lean_client(
    database_url, queues: Queues, sqs_endpoint, monkeypatch, rotating_credentials: list[str]
) -> None:
    plan = FaultPlan(enabled=False)  # a recording proxy: which key signed each request
    runner, proxy = await start_proxy(sqs_endpoint, plan)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy)
    try:
        sqs = await _sqs(database_url, queues.url, "lean")
        try:
            for _ in range(4):
                await sqs.receive(queues.url, wait_s=0)
                await asyncio.sleep(0)
        finally:
            await sqs.close()
    finally:
        await runner.cleanup()
    receive_keys = [k for k in plan.access_keys if k.startswith("ASIAROTATING")]
    assert len(receive_keys) >= 2, (plan.access_keys, rotating_credentials)  # signed with fresh keys as they came
    assert set(receive_keys) <= set(rotating_credentials)
