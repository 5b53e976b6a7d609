"""The failover drill's table: drill messages applied to ``sqs2pg_drill`` instead of the handler, and read back.

`sqs2pg drill` sends a numbered workload through the real queue (messages marked with the attribute
``sqs2pg_drill``, the run's id), while you fail the database over (the Terraform module's FIS experiment, or
by hand). The service applies marked messages to its own table ``sqs2pg_drill``, never through your handler,
so a drill is safe on a live queue. The command then reads that table and reports what was lost, applied
twice or applied out of order per group, with the longest pause in applying (the time to recover) and the
send-to-apply latencies. It exits 1 if any message was lost, duplicated or reordered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from ..errors import InvalidMessage
from ..handler import Handler, HandlesMany
from ..message import DRILL_ATTRIBUTE, Message

_INSERT = """
INSERT INTO sqs2pg_drill (run_id, message_group_id, seq, message_id, sent_at)
SELECT r, g, s, m, to_timestamp(t / 1000.0)
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::float8[]) AS x(r, g, s, m, t)
"""
_ROWS = "SELECT message_group_id, seq, sent_at, applied_at FROM sqs2pg_drill WHERE run_id = $1 ORDER BY id"
_COUNT = "SELECT count(DISTINCT (message_group_id, seq)) FROM sqs2pg_drill WHERE run_id = $1"


def is_drill(message: Message) -> bool:
    return DRILL_ATTRIBUTE in message.attributes


def _row(message: Message) -> tuple[str, str, int, str, float | None]:
    body = message.json
    if not isinstance(body, dict) or not isinstance(body.get("seq"), int):
        raise InvalidMessage('a drill message\'s body must be {"seq": <int>, "sent_ms": <number>}')
    sent = body.get("sent_ms")
    return (
        message.attribute(DRILL_ATTRIBUTE) or "",
        message.group_id,
        body["seq"],
        message.message_id,
        float(sent) if isinstance(sent, (int, float)) else None,
    )


async def apply(conn: asyncpg.Connection, messages: Sequence[Message]) -> None:
    """Record drill messages in sqs2pg_drill, in the transaction that holds their idempotency records."""
    rows = [_row(m) for m in messages]
    await conn.execute(_INSERT, *(list(column) for column in zip(*rows, strict=True)))


def routed(handler: Handler) -> Handler:
    """The handler, with drill messages sent to the drill table instead."""

    async def route(conn: asyncpg.Connection, message: Message) -> None:
        if is_drill(message):
            await apply(conn, [message])
        else:
            await handler(conn, message)

    return route


def routed_many(handler: Handler, many: HandlesMany | None) -> HandlesMany | None:
    """The batch form (if the handler has one), with drill messages sent to the drill table instead."""
    if many is None:
        return None

    async def route_many(conn: asyncpg.Connection, messages: Sequence[Message]) -> None:
        drills = [m for m in messages if is_drill(m)]
        if drills:
            await apply(conn, drills)
        rest = [m for m in messages if not is_drill(m)]
        if rest:
            await many(conn, rest)

    return route_many


async def applied(conn: asyncpg.Connection, run_id: str) -> int:
    return int(await conn.fetchval(_COUNT, run_id))


async def report(conn: asyncpg.Connection, run_id: str, sent: int, failed: int) -> dict[str, Any]:
    """Lost, duplicated and reordered from the drill table; the longest pause in applying; latencies."""
    return summarise(await conn.fetch(_ROWS, run_id), run_id, sent, failed)


def summarise(rows: Sequence[Mapping[str, Any]], run_id: str, sent: int, failed: int) -> dict[str, Any]:
    """The drill's report from its rows in apply order (message_group_id, seq, sent_at, applied_at)."""
    seen: set[tuple[str, int]] = set()
    last: dict[str, int] = {}
    duplicated = reordered = 0
    latencies: list[float] = []
    for r in rows:
        key = (r["message_group_id"], r["seq"])
        if key in seen:
            duplicated += 1
            continue
        seen.add(key)
        if r["seq"] < last.get(r["message_group_id"], -1):
            reordered += 1
        last[r["message_group_id"]] = max(r["seq"], last.get(r["message_group_id"], -1))
        if r["sent_at"] is not None:
            latencies.append((r["applied_at"] - r["sent_at"]).total_seconds())
    times = sorted(r["applied_at"] for r in rows)
    pause = max(((b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)), default=0.0)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3) if latencies else 0.0

    return {
        "run": run_id,
        "sent": sent,
        "send_failed": failed,
        "applied": len(seen),
        "lost": max(0, sent - len(seen)),
        "duplicated": duplicated,
        "reordered": reordered,
        "longest_pause_s": round(pause, 3),
        "latency_p50_s": pct(0.5),
        "latency_p99_s": pct(0.99),
        "latency_max_s": round(latencies[-1], 3) if latencies else 0.0,
    }
