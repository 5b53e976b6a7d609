"""The one HTTP port: /metrics, /healthz (the loop is responsive), /readyz (database answers, pollers run)."""

from __future__ import annotations

import time
from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .metrics import Metrics

LOOP_STALL_S = 10.0  # no tick for this long means the event loop is stuck


class Probes:
    """What the endpoints report; the app fills it in."""

    def __init__(self) -> None:
        self.last_tick = time.monotonic()
        self.checks: dict[str, Callable[[], Awaitable[bool]]] = {}

    def tick(self) -> None:
        self.last_tick = time.monotonic()


async def start(metrics: Metrics, probes: Probes, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve the endpoints; returns the runner (to clean up) and the bound port (port 0 picks one)."""

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        stalled = time.monotonic() - probes.last_tick
        ok = stalled < LOOP_STALL_S
        return web.json_response({"status": "ok" if ok else "stalled", "loop_lag_s": round(stalled, 3)}, status=200 if ok else 503)

    async def readyz(_: web.Request) -> web.Response:
        results = {name: await check() for name, check in probes.checks.items()}
        ok = bool(results) and all(results.values())
        return web.json_response({"status": "ready" if ok else "not ready", **results}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port  # type: ignore[union-attr]
    return runner, int(bound)
