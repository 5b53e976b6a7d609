"""An HTTP proxy between sqs2pg and an SQS emulator that injects the trouble real networks and SQS give.

Per request, by a seeded random draw: pass through, delay, answer 500 (InternalError) or 400
(ThrottlingException) without forwarding, drop the connection without forwarding, or forward and then lose
the response (the server acted, the client never hears: the dangerous case for ReceiveMessage and
DeleteMessageBatch). Counts what it did per kind and operation.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web


@dataclass
class FaultPlan:
    delay: float = 0.15
    error_500: float = 0.08
    throttle: float = 0.08
    drop: float = 0.05
    lose_response: float = 0.06
    seed: int = 7
    counts: Counter[str] = field(default_factory=Counter)
    enabled: bool = True
    access_keys: Counter[str] = field(default_factory=Counter)  # the key id each request was signed with
    refuse: set[str] = field(default_factory=set)  # operations answered 500 every time, whatever the draw


async def start_proxy(upstream: str, plan: FaultPlan) -> tuple[web.AppRunner, str]:
    rng = random.Random(plan.seed)
    session = aiohttp.ClientSession()

    async def forward(request: web.Request, body: bytes) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with session.request(request.method, upstream + request.path_qs, data=body, headers=headers) as r:
            payload = await r.read()
            out = {
                k: v
                for k, v in r.headers.items()
                if k.lower() in ("content-type", "x-amzn-requestid", "x-amzn-query-error")
            }
            return web.Response(status=r.status, body=payload, headers=out)

    def error(status: int, code: str, message: str) -> web.Response:
        return web.Response(
            status=status,
            body=json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}),
            headers={"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": f"{code};Sender"},
        )

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        op = request.headers.get("X-Amz-Target", "?").rsplit(".", 1)[-1]
        if "Credential=" in (auth := request.headers.get("Authorization", "")):
            plan.access_keys[auth.split("Credential=", 1)[1].split("/", 1)[0]] += 1
        if op in plan.refuse:
            plan.counts[f"refused:{op}"] += 1
            return error(500, "InternalError", "refused by the fault proxy")
        if not plan.enabled:
            return await forward(request, body)
        draw = rng.random()
        edges = [
            ("lose_response", plan.lose_response),
            ("drop", plan.drop),
            ("error_500", plan.error_500),
            ("throttle", plan.throttle),
            ("delay", plan.delay),
        ]
        kind, acc = "pass", 0.0
        for name, p in edges:
            acc += p
            if draw < acc:
                kind = name
                break
        plan.counts[f"{kind}:{op}"] += 1
        if kind == "delay":
            await asyncio.sleep(rng.uniform(0.05, 0.4))
        if kind in ("drop", "lose_response"):
            if kind == "lose_response":
                await forward(request, body)  # the server acts on it...
            assert request.transport is not None
            request.transport.close()  # ...and the client hears nothing
            raise asyncio.CancelledError()
        if kind == "error_500":
            return error(500, "InternalError", "injected by the fault proxy")
        if kind == "throttle":
            return error(400, "ThrottlingException", "Rate exceeded (injected)")
        return await forward(request, body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)

    async def close_session(_: web.Application) -> None:
        await session.close()

    app.on_cleanup.append(close_session)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}"
