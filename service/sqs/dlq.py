"""Dead-letter tooling: stats, peek and redrive, for the DLQ of each configured queue.

Peek holds what it receives invisible until it is done (a FIFO queue would otherwise hand the same head
messages back on every receive) and never takes more than asked. Redrive sends a copy back to the
source queue *before* deleting from the DLQ, one message at a time in group order, so a kill at any moment
loses nothing: at worst a message is in both queues, the copy's deduplication id (the DLQ message id) makes
SQS drop a second send within 5 minutes, and sqs2pg's idempotency key recognises it after that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Sqs2pgError
from ..message import Message
from ..observe import traces
from .client import Sqs
from .deadletter import Attributes, for_source, original_id, reason
from .queues import QueueInfo

HOLD_S = 120  # how long peek/redrive keep received DLQ messages invisible while they work


@dataclass
class Peeked:
    messages: list[Message] = field(default_factory=list)

    def by_reason(self) -> Counter[str]:
        return Counter(reason(m) for m in self.messages)

    def by_group(self) -> Counter[str]:
        return Counter(m.group_id for m in self.messages)


@dataclass
class RedriveResult:
    moved: int = 0
    would_move: int = 0
    failed: list[str] = field(default_factory=list)


async def stats(sqs: Sqs, queues: list[QueueInfo]) -> list[dict[str, Any]]:
    return [{"queue": q.name, "dlq": q.dlq_url, **await sqs.counts(q.dlq_url)} for q in queues]


def named(m: Message) -> str:
    """A dead-lettered message as every dlq line names it: its group, the id it had on the source queue (the one
    logs and `sqs2pg status` name) and the id of its copy in the DLQ."""
    return f"group={m.group_id} id={original_id(m)} dlq_id={m.message_id}"


async def _take(sqs: Sqs, dlq_url: str, limit: int, rounds: int = 1000) -> list[Message]:
    """Receive up to ``limit`` DLQ messages, in order, holding them invisible."""
    taken: list[Message] = []
    while len(taken) < limit and rounds > 0:
        rounds -= 1
        raw = await sqs.receive(dlq_url, wait_s=1, visibility_s=HOLD_S, max_messages=min(10, limit - len(taken)))
        if not raw:
            break
        taken.extend(Message.from_sqs(dlq_url, r, HOLD_S) for r in raw)
    return taken


async def _give_back(sqs: Sqs, dlq_url: str, messages: list[Message]) -> None:
    for i in range(0, len(messages), 10):
        await sqs.change_visibility(dlq_url, [(m, 0) for m in messages[i : i + 10]])


async def peek(sqs: Sqs, queue: QueueInfo, limit: int) -> Peeked:
    """Look at up to ``limit`` dead-lettered messages and put them back untouched.

    On a FIFO queue that is what the queue hands out without deleting: the first messages of each group
    (one per group on servers that keep one in flight per group). ``stats`` gives the full counts."""
    messages = await _take(sqs, queue.dlq_url, limit)
    try:
        return Peeked(messages)
    finally:
        await _give_back(sqs, queue.dlq_url, messages)


async def redrive(
    sqs: Sqs,
    queue: QueueInfo,
    limit: int,
    dry_run: bool,
    report: Callable[[str], None] = print,
    group: str | None = None,
    kept: Callable[[Message], Awaitable[Attributes | None]] | None = None,
) -> RedriveResult:
    """Move up to ``limit`` messages from the DLQ back to the source queue, keeping group and idempotency key.

    It streams: receive, then send and delete each message in order. A FIFO queue hands out a group's next
    message only once the earlier ones are gone, so this is also the only way through a long group. On the
    first failure it stops and gives back what it holds (visible at once); the rest stays for a rerun.
    A dry run shows what the queue hands out without deleting: every group's first messages, not all.
    ``group``: only that group's messages; the others it receives are held aside (so the queue hands out
    more) and given back at the end.
    Each message is moved once per run: a copy this run moved back that the service dead-letters again while
    the run goes on (its handler still fails, or its group is quarantined) comes back to the DLQ behind the
    rest of its group; it is recognised by the id of the copy this run sent (sqs2pg's DLQ copy carries it as
    its deduplication id; SQS's own move keeps it) and left there, in order, for the next run.
    ``kept``: a message's own attributes as its dead-letter record kept them (with DATABASE_URL): a copy to the DLQ
    that had to leave some out gets them back here.
    """
    result = RedriveResult()
    if dry_run:
        seen = await peek(sqs, queue, limit)
        for m in seen.messages:
            if group is None or m.group_id == group:
                report(f"would move  {named(m)} reason={reason(m)}")
                result.would_move += 1
        return result
    aside: list[Message] = []
    sent: set[str] = set()  # ids of the copies this run sent back to the source queue
    try:
        while result.moved < limit and not result.failed:
            batch = await _take(sqs, queue.dlq_url, min(10, limit - result.moved), rounds=1)
            if not batch:
                break
            again = [m for m in batch if original_id(m) in sent]
            aside.extend(m for m in batch if m in again or (group is not None and m.group_id != group))
            mine = [m for m in batch if m not in again and (group is None or m.group_id == group)]
            moved: set[Message] = set()
            try:
                for m in mine:
                    try:
                        restored = await kept(m) if kept is not None else None
                        # the copy carries the message's trace context (tracing on: a send span's, under it)
                        with traces.sending(m, queue.name) as trace:
                            copy_id, left_out = await sqs.send(
                                queue.url, m, for_source(m), m.message_id, restored, trace
                            )
                        sent.add(copy_id)
                        if left_out:
                            report(f"left out (SQS takes 10 attributes)  {named(m)}: {', '.join(left_out)}")
                    except Sqs2pgError as exc:
                        result.failed.append(f"{m.message_id}: {exc}")
                        report(f"FAILED  {named(m)}: {exc}")
                        break
                    moved.add(m)
                    failed = await sqs.delete(queue.dlq_url, [m])
                    if failed:
                        # Sent but not deleted: a rerun sends it again, and that copy is recognised as a duplicate.
                        report(f"moved, not deleted from the DLQ ({failed[0][1]})  {named(m)}")
                    result.moved += 1
                    report(f"moved  {named(m)} reason={reason(m)}")
            finally:
                await _give_back(sqs, queue.dlq_url, [m for m in mine if m not in moved])
    finally:
        await _give_back(sqs, queue.dlq_url, aside)
    return result
