"""Heartbeat: keep every held message invisible to other consumers for as long as we hold it."""

from __future__ import annotations

import asyncio
import contextlib
import time

from .dispatcher import Dispatcher
from .settle import Settler


def interval_s(visibility_timeout_s: int, fraction: float) -> float:
    """How often to look: twice per remaining margin, so a slow SQS call still lands in time."""
    return max(0.2, min(10.0, visibility_timeout_s * (1 - fraction) / 2))


async def heartbeat(dispatcher: Dispatcher, settler: Settler, visibility_timeout_s: int, fraction: float) -> None:
    """Extend a message once ``fraction`` of its visibility has passed (waiting or being handled)."""
    margin = visibility_timeout_s * (1 - fraction)
    while True:
        await asyncio.sleep(interval_s(visibility_timeout_s, fraction))
        now = time.monotonic()
        due = [m for m in dispatcher.held_messages() if m.visible_until - now <= margin]
        if due:
            # Bounded: a hung call must not hold up the next round while the margin runs out. The next round
            # tries again; a message that lapses comes back and is then a duplicate.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(settler.extend(due, visibility_timeout_s), margin / 2)
