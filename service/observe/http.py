"""The one HTTP port: /metrics, /healthz (the loop is responsive), /readyz (database answers, pollers run), and
with SQS2PG_WRITES_ENDPOINT=on, GET /writes/{key} (a write's status, db/records.py; never its body).

It shares the event loop with the consumer, so it is built never to take much of it, whoever calls: at most
``MAX_CONNECTIONS`` connections (more are closed at once), each held to a deadline for its next complete request
(``REQUEST_WITHIN_S``: a client that trickles its headers, or idles, is cut off) and paced to
``REQUESTS_PER_S`` requests a second; /metrics rendered at most once a second and /readyz checked at most once
a second, whoever asks, the answer shared. Its ``Server`` header names no version.
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import StartupError
from ..message import MAX_KEY_LENGTH
from .metrics import Metrics

LOOP_STALL_S = 10.0  # no tick for this long means the event loop is stuck
TICK_S = 1.0  # the event loop ticks this often (App._tick)
MAX_CONNECTIONS = 64  # Prometheus, a health checker, an operator's curl: a handful is the norm
REQUEST_WITHIN_S = 15.0  # from the connection, or the last answer, to the next complete request
REQUESTS_PER_S = 10.0  # per connection: a scraper asks once per interval
FRESH_S = 1.0  # /metrics and /readyz answers are shared this long


class Probes:
    """What the endpoints report; the app fills it in."""

    def __init__(self) -> None:
        self.last_tick = time.monotonic()
        self.loop_lag_s = 0.0
        self.checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        # a write's status by key (db/records.py), when SQS2PG_WRITES_ENDPOINT=on; None: /writes answers 404
        self.writes: Callable[[str], Awaitable[dict[str, Any]]] | None = None

    def tick(self, lag_s: float = 0.0) -> None:
        """The event loop's once-a-second tick; ``lag_s``: how late it woke."""
        self.last_tick = time.monotonic()
        self.loop_lag_s = max(0.0, lag_s)


class _Shared:
    """One answer made at most once per FRESH_S, shared by every request meanwhile (and by those that wait for it)."""

    def __init__(self, make: Callable[[], Awaitable[Any]]) -> None:
        self._make = make
        self._value: Any = None
        self._at = -FRESH_S
        self._lock = asyncio.Lock()

    async def get(self) -> Any:
        if time.monotonic() - self._at < FRESH_S:
            return self._value
        async with self._lock:
            if time.monotonic() - self._at >= FRESH_S:
                self._value = await self._make()
                self._at = time.monotonic()
        return self._value


class _Connection(web.RequestHandler):
    """aiohttp's connection handler, held to MAX_CONNECTIONS, to a deadline for each request and to a pace."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        server = self._guarded
        self._counted = server.open < MAX_CONNECTIONS
        if not self._counted:
            transport.close()  # over the limit: no work at all for it
            return
        server.open += 1
        self._last_request = 0.0
        self._deadline: asyncio.TimerHandle | None = None
        self.expect_request()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._guarded.open -= 1
            self._counted = False
            if self._deadline is not None:
                self._deadline.cancel()
        super().connection_lost(exc)

    @property
    def _guarded(self) -> _GuardedServer:
        manager = self._manager
        assert isinstance(manager, _GuardedServer)
        return manager

    def expect_request(self) -> None:
        """The next complete request must arrive within REQUEST_WITHIN_S, or the connection is closed."""
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self._loop.call_later(REQUEST_WITHIN_S, self.force_close)

    async def pace(self) -> None:
        """A request has arrived: no deadline while it is answered; at most REQUESTS_PER_S a second."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        wait = self._last_request + 1 / REQUESTS_PER_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_request = time.monotonic()


class _GuardedServer(web.Server):
    """aiohttp's low-level server, making _Connection handlers and counting them."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.open = 0

    def __call__(self) -> web.RequestHandler:
        return _Connection(self, loop=self._loop, keepalive_timeout=REQUEST_WITHIN_S)


async def start(metrics: Metrics, probes: Probes, host: str, port: int) -> tuple[web.ServerRunner, int]:
    """Serve the endpoints; returns the runner (to clean up) and the bound port (port 0 picks one)."""

    async def render() -> bytes:
        return metrics.render()

    async def check() -> dict[str, bool]:
        return {name: await check() for name, check in probes.checks.items()}

    rendered, checked = _Shared(render), _Shared(check)

    async def healthz() -> web.Response:
        since_tick = time.monotonic() - probes.last_tick
        ok = since_tick < LOOP_STALL_S
        # how late the loop runs: the last tick's delay, or, while the next tick is overdue, how overdue it is
        lag = max(probes.loop_lag_s, since_tick - TICK_S)
        return _json({"status": "ok" if ok else "stalled", "loop_lag_s": round(lag, 3)}, 200 if ok else 503)

    async def readyz() -> web.Response:
        results = await checked.get()
        ok = bool(results) and all(results.values())
        return _json({"status": "ready" if ok else "not ready", **results}, 200 if ok else 503)

    async def write_status(key: str) -> web.Response:
        if probes.writes is None:
            return _text("GET /writes/{key} is off: SQS2PG_WRITES_ENDPOINT=on turns it on\n", 404)
        if not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
            return _json({"error": f"not an idempotency key: 1 to {MAX_KEY_LENGTH} characters, no NUL"}, 400)
        try:
            answer = await probes.writes(key)
        except Exception as exc:  # noqa: BLE001 - the database did not answer: say so, never a traceback
            return _json({"key": key, "error": f"the database did not answer ({type(exc).__name__})"}, 503)
        return _json(answer, 404 if answer["status"] == "unknown" else 200)

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        connection = request.protocol
        if isinstance(connection, _Connection):
            await connection.pace()
        try:
            response = await route(request)
            response.headers["Server"] = "sqs2pg"  # aiohttp's default names Python's and its own version
            return response
        finally:
            if isinstance(connection, _Connection):
                connection.expect_request()

    async def route(request: web.BaseRequest) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return _text("only GET\n", 405)
        path = request.path
        if path == "/metrics":
            return web.Response(body=await rendered.get(), headers={"Content-Type": CONTENT_TYPE_LATEST})
        if path == "/healthz":
            return await healthz()
        if path == "/readyz":
            return await readyz()
        if path.startswith("/writes/"):
            return await write_status(path.removeprefix("/writes/"))
        return _text("not found: /metrics, /healthz, /readyz, /writes/{key}\n", 404)

    sock = _bind(host, port)
    runner = web.ServerRunner(_GuardedServer(handle), handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, int(sock.getsockname()[1])


def _json(body: Any, status: int) -> web.Response:
    return web.Response(text=json.dumps(body, default=str), status=status, content_type="application/json")


def _text(body: str, status: int) -> web.Response:
    return web.Response(text=body, status=status)


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
