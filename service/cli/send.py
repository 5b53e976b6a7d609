"""`sqs2pg send`: send writes (JSON lines) through the Producer, with group, idempotency key and deduplication id."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..config import Settings
from ..errors import StartupError
from ..observe.metrics import Metrics
from ..sqs.client import Sqs
from .common import EXIT_FAILED, RAW, Command, queue_urls


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "send",
        help="send writes (JSON lines) to a queue, with group and idempotency key",
        formatter_class=RAW,
        description="Send writes through the Producer (MessageGroupId, idempotency_key attribute, deduplication "
        "id), one per line of JSON. Without --group each line is a write:\n"
        '  {"group": "order-42", "key": "order-42-paid", "body": {...}, "attributes": {"source": "web"}}\n'
        "(key and attributes optional; a missing key is generated). With --group each line is a body, sent to "
        "that group. Needs SQS_QUEUE_URLS and the AWS settings, not DATABASE_URL.",
        epilog="exit 0 when every line was sent, 1 when some failed (each named on stderr), 2 when it cannot start",
    )
    p.add_argument("file", nargs="?", default="-", help="a file of JSON lines (default: stdin)")
    p.add_argument(
        "--queue", help="a queue named in SQS_QUEUE_URLS, or any queue URL (default: the first of SQS_QUEUE_URLS)"
    )
    p.add_argument("--group", help="every line is a body for this message group")
    p.add_argument(
        "--print-keys",
        action="store_true",
        help="print each sent write's key, group and message id (tab-separated) on stdout; the summary then goes "
        "to stderr",
    )
    return p


async def open_producer(settings: Settings, queue: str | None) -> Any:
    """A Producer for ``--queue`` (default: the first configured queue), the queue checked as `run` checks it, so
    what is wrong (credentials, endpoint, a missing queue) is said the same way, in one line."""
    from ..producer import Producer, ProducerError

    url = queue_urls(settings, queue, any_url=True)[0]
    sqs = Sqs(settings, Metrics())
    try:
        await sqs.open()
        await sqs.describe(url)
    finally:
        await sqs.close()
    producer = Producer(url, region=settings.region)
    try:
        await producer.open()
    except ProducerError as exc:
        raise StartupError(str(exc)) from exc
    except Exception as exc:
        raise StartupError(f"cannot reach SQS for {url}: {type(exc).__name__}: {exc}") from exc
    return producer


def _write(line: str, group: str | None) -> Any:
    """One line of `sqs2pg send`'s input as a Write; ValueError says what is wrong with it."""
    from ..producer import Write

    try:
        doc = json.loads(line)
    except ValueError:
        raise ValueError("not JSON") from None
    if group is not None:
        return Write(doc, group)
    if not isinstance(doc, dict) or "body" not in doc or "group" not in doc:
        raise ValueError('not a write: {"group": ..., "body": ...} (or pass --group to send plain bodies)')
    unknown = set(doc) - {"group", "key", "body", "attributes"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}: a write has group, key, body, attributes")
    return Write(doc["body"], doc["group"], doc.get("key"), doc.get("attributes") or {})


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from ..producer import ProducerError, Sent

    source = sys.stdin if args.file == "-" else None
    try:
        stream = source or open(args.file, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise StartupError(f"cannot read {args.file}: {exc.strerror}") from exc
    producer = await open_producer(settings, args.queue)
    sent = failed = 0
    started = last_progress = time.monotonic()

    def fail(line_no: int, reason: str) -> None:
        nonlocal failed
        failed += 1
        print(f"line {line_no}: not sent: {reason}", file=sys.stderr)

    async def flush(chunk: list[tuple[int, Any]]) -> None:
        nonlocal sent
        results = await producer.send_many([w for _, w in chunk])
        for (line_no, _), result in zip(chunk, results, strict=True):
            if isinstance(result, Sent):
                sent += 1
                if args.print_keys:
                    print(f"{result.key}\t{result.group}\t{result.message_id}")
            else:
                fail(line_no, f"{result.code}: {result.reason}")

    try:
        chunk: list[tuple[int, Any]] = []
        for line_no, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                write = _write(line, args.group)
                producer.validate(write)
            except (ValueError, ProducerError) as exc:
                fail(line_no, str(exc))
                continue
            chunk.append((line_no, write))
            if len(chunk) == 100:
                await flush(chunk)
                chunk = []
                if time.monotonic() - last_progress >= 2:
                    last_progress = time.monotonic()
                    print(f"... {sent} sent, {failed} failed", file=sys.stderr, flush=True)
        if chunk:
            await flush(chunk)
    finally:
        if source is None:
            stream.close()
        await producer.close()
    # With --print-keys, stdout carries the keys alone (`> keys.tsv`, `| head`), and the count goes to stderr.
    print(
        f"{sent} sent to {producer.queue_name}, {failed} failed ({time.monotonic() - started:.1f} s)",
        file=sys.stderr if args.print_keys else sys.stdout,
    )
    return EXIT_FAILED if failed else 0


COMMAND = Command("send", add_parser, run, needs_database=False)
