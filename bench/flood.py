"""A flood of HTTP clients on one URL, for the benchmark's flood series: CLIENTS keep-alive connections, each asking
again as soon as it has its answer, until stopped (SIGTERM); then one JSON line: requests answered, refused.

    python -m bench.flood URL CLIENTS
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import aiohttp


async def main(url: str, clients: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    counts = {"answered": 0, "refused": 0}

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            try:
                async with session.get(url) as response:
                    await response.read()
                    counts["answered"] += 1
            except (aiohttp.ClientError, OSError):
                counts["refused"] += 1
                await asyncio.sleep(0.01)

    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(clients)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
