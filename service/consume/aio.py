"""Small asyncio helpers shared by the long-lived tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def unless(aw: Awaitable[Any], stop: asyncio.Event) -> bool:
    """Await ``aw`` unless ``stop`` is set first (then cancel it). True when ``aw`` finished.

    Cancelling the caller cancels ``aw`` too and is never swallowed.
    """
    task = asyncio.ensure_future(aw)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        stopper.cancel()
    if task.done():
        return True
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:  # noqa: BLE001 - abandoned on purpose; its outcome no longer matters
        pass
    return False
