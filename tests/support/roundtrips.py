"""A TCP proxy in front of PostgreSQL that counts round trips: each time the client stops to wait for the server.

It reads the frontend side of PostgreSQL's protocol: after the startup packet, each message is a type byte and a
length. A client waits for the server after a Sync (``S``: the end of an extended-protocol exchange), a simple
Query (``Q``) or a Flush (``H``); each of those ends one round trip. Use it with ``sslmode=disable`` (it cannot read
TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

from .helpers import through_local_port

WAITS = {ord("S"), ord("Q"), ord("H")}


class RoundTrips:
    def __init__(self) -> None:
        self.count = 0

    async def _client_to_server(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        length = struct.unpack("!i", await reader.readexactly(4))[0]
        writer.write(struct.pack("!i", length) + await reader.readexactly(length - 4))  # the startup packet
        while True:
            header = await reader.readexactly(5)
            body = await reader.readexactly(struct.unpack("!i", header[1:])[0] - 4)
            if header[0] in WAITS:
                self.count += 1
            writer.write(header + body)
            await writer.drain()

    @staticmethod
    async def _server_to_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def _serve(
        self, host: str, port: int, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        server_r, server_w = await asyncio.open_connection(host, port)
        pumps = [
            asyncio.ensure_future(self._client_to_server(client_r, server_w)),
            asyncio.ensure_future(self._server_to_client(server_r, client_w)),
        ]
        with contextlib.suppress(Exception):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        for w in (server_w, client_w):
            w.close()


@contextlib.asynccontextmanager
async def counting(database_url: str) -> AsyncIterator[tuple[str, RoundTrips]]:
    """database_url through the counting proxy (sslmode=disable), and its counter."""
    parts = urlsplit(database_url)
    trips = RoundTrips()
    server = await asyncio.start_server(
        lambda r, w: trips._serve(parts.hostname or "127.0.0.1", parts.port or 5432, r, w), "127.0.0.1", 0
    )
    proxied = urlsplit(through_local_port(database_url, server.sockets[0].getsockname()[1]))
    query = "&".join([q for q in parts.query.split("&") if q and not q.startswith("sslmode=")] + ["sslmode=disable"])
    try:
        yield urlunsplit(proxied._replace(query=query)), trips
    finally:
        server.close()
        await server.wait_closed()
