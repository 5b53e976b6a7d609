"""A TCP proxy that adds a fixed delay to every request, so that SQS on loopback behaves as SQS milliseconds away.

Each chunk a client sends is forwarded to the upstream `delay_ms` after it arrived (chunks keep their order);
responses come back at once. An HTTP request/response round trip through it takes `delay_ms` longer, whatever
the request. It runs as its own process (its CPU is not the service's), and every measurement of a delay
series goes through it, 0 ms included, so that the proxy's own cost is the same in each.

    python -m bench.delay_proxy --upstream 127.0.0.1:PORT --delay-ms 15 --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def forward() -> None:
        while True:
            due, data = await chunks.get()
            if not data:
                break
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(forward())
    try:
        while True:
            data = await reader.read(65536)
            chunks.put_nowait((loop.time() + delay_s, data))
            if not data:
                break
        await sender
    finally:
        sender.cancel()
        with contextlib.suppress(Exception):
            writer.close()


async def serve(upstream: tuple[str, int], port: int, delay_ms: float) -> None:
    delay_s = delay_ms / 1000

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*upstream)
        except OSError:
            client_writer.close()
            return
        with contextlib.suppress(ConnectionError, OSError):
            await asyncio.gather(_pump(client_reader, up_writer, delay_s), _pump(up_reader, client_writer, 0.0))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="host:port of the SQS server")
    p.add_argument("--delay-ms", type=float, required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    host, _, port = args.upstream.rpartition(":")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve((host, int(port)), args.port, args.delay_ms))


if __name__ == "__main__":
    main()
