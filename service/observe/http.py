"""The one HTTP port: /metrics, /healthz (the loop is responsive), /readyz (database answers, pollers run), and
with SQS2PG_WRITES_ENDPOINT=on, GET /writes/{key} (a write's status, writes.py; never its body)."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import StartupError
from .metrics import Metrics

LOOP_STALL_S = 10.0  # no tick for this long means the event loop is stuck
TICK_S = 1.0  # the event loop ticks this often (App._tick)


class Probes:
    """What the endpoints report; the app fills it in."""

    def __init__(self) -> None:
        self.last_tick = time.monotonic()
        self.loop_lag_s = 0.0
        self.checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        # a write's status by key (writes.py), when SQS2PG_WRITES_ENDPOINT=on; None: /writes answers 404
        self.writes: Callable[[str], Awaitable[dict[str, Any]]] | None = None

    def tick(self, lag_s: float = 0.0) -> None:
        """The event loop's once-a-second tick; ``lag_s``: how late it woke."""
        self.last_tick = time.monotonic()
        self.loop_lag_s = max(0.0, lag_s)


async def start(metrics: Metrics, probes: Probes, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve the endpoints; returns the runner (to clean up) and the bound port (port 0 picks one)."""

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        since_tick = time.monotonic() - probes.last_tick
        ok = since_tick < LOOP_STALL_S
        # how late the loop runs: the last tick's delay, or, while the next tick is overdue, how overdue it is
        lag = max(probes.loop_lag_s, since_tick - TICK_S)
        return web.json_response(
            {"status": "ok" if ok else "stalled", "loop_lag_s": round(lag, 3)}, status=200 if ok else 503
        )

    async def readyz(_: web.Request) -> web.Response:
        results = {name: await check() for name, check in probes.checks.items()}
        ok = bool(results) and all(results.values())
        return web.json_response({"status": "ready" if ok else "not ready", **results}, status=200 if ok else 503)

    async def write_status(request: web.Request) -> web.Response:
        if probes.writes is None:
            raise web.HTTPNotFound(text="GET /writes/{key} is off: SQS2PG_WRITES_ENDPOINT=on turns it on\n")
        key = request.match_info["key"]
        try:
            answer = await probes.writes(key)
        except Exception as exc:  # noqa: BLE001 - the database did not answer: say so, never a traceback
            return web.json_response(
                {"key": key, "error": f"the database did not answer ({type(exc).__name__})"}, status=503
            )
        return web.json_response(answer, status=404 if answer["status"] == "unknown" else 200)

    app = web.Application()
    app.router.add_get("/writes/{key}", write_status)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    sock = _bind(host, port)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, int(sock.getsockname()[1])


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is one clear StartupError."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port} ({exc}): check SQS2PG_HTTP_HOST") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        advice = {
            errno.EADDRINUSE: "set HTTP_PORT to a free port, or stop what holds it",
            errno.EADDRNOTAVAIL: "SQS2PG_HTTP_HOST is not an address of this host (0.0.0.0 listens on all)",
            errno.EACCES: "ports below 1024 need privileges: set HTTP_PORT to 1024 or above",
        }.get(exc.errno or 0, "check HTTP_PORT and SQS2PG_HTTP_HOST")
        raise StartupError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): {advice}") from exc
    sock.setblocking(False)
    return sock
