"""What every command shares: exit codes, the Command shape, one way to reach the database, one way to resolve
``--queue``, and running a coroutine on uvloop."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import uvloop

from ..config import Settings
from ..db import migrate
from ..db.pool import describe_database_error
from ..errors import StartupError
from ..message import queue_name

T = TypeVar("T")
EXIT_FAILED = 1  # `check` found a problem, `dlq redrive` failed to move a message, or `run` crashed after starting
EXIT_CANNOT_START = 2  # configuration or environment unusable: restarting will not help
RAW = argparse.RawDescriptionHelpFormatter

REQUIRED = """\
required environment:
  DATABASE_URL      postgresql://user:password@host:5432/dbname (several hosts: host1:5432,host2:5432)
  SQS_QUEUE_URLS    comma-separated FIFO queue URLs, each with a FIFO dead-letter queue (RedrivePolicy)
  AWS_REGION        unless it can be read from the queue URLs; credentials and AWS_ENDPOINT_URL_SQS (an
                    emulator) come from the AWS SDK's usual variables, profiles or the task role"""


@dataclass(frozen=True)
class Command:
    """One `sqs2pg NAME`: how its parser is added, what it needs from the environment, and what runs it (an int is
    the exit code; a coroutine is run on uvloop first)."""

    name: str
    add_parser: Callable[[Any], argparse.ArgumentParser]
    run: Callable[[Settings, argparse.Namespace], int | Awaitable[int]]
    needs_database: bool = True
    needs_queues: bool = True


def subcommand(sub: Any, name: str, text: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand whose --help description is its one-line help, as a sentence (unless one is given)."""
    kwargs.setdefault("description", text[0].upper() + text[1:] + ".")
    parser: argparse.ArgumentParser = sub.add_parser(name, help=text, **kwargs)
    return parser


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


async def database(settings: Settings) -> asyncpg.Connection:
    """One connection with the service's settings; StartupError (one line, exit 2) when there is none."""
    try:
        return await migrate.connect(settings)
    except Exception as exc:
        raise StartupError(describe_database_error(exc, settings.redacted_database_url())) from exc


def queue_urls(settings: Settings, queue: str | None, *, any_url: bool = False) -> list[str]:
    """The configured queues ``--queue`` names (all of them without it). ``any_url``: a URL not in SQS_QUEUE_URLS
    is taken too (a producer may send where this service does not consume). StartupError for anything else."""
    if queue is None:
        return list(settings.queue_urls)
    urls = [u for u in settings.queue_urls if queue in (u, queue_name(u))]
    if urls:
        return urls
    if any_url and "://" in queue:
        return [queue]
    raise StartupError(f"--queue {queue!r} is not one of SQS_QUEUE_URLS ({', '.join(settings.queue_urls)})")


def in_loop(coro: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(coro)


class ReaderGone(io.TextIOBase):
    """stdout that goes quiet when its reader does (`sqs2pg send --print-keys | head -1`): what is written after
    that is dropped and the command carries on to its end and its own exit code, as `grep` or `cat` would
    rather than abort half-way through a send."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._went()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._went()

    def fileno(self) -> int:
        return int(self._stream.fileno())

    def isatty(self) -> bool:
        return bool(self._stream.isatty())

    def _went(self) -> None:
        self.gone = True
        # The descriptor now points at /dev/null: the interpreter's own flush at exit cannot fail either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)


@contextlib.contextmanager
def quiet_when_reader_goes() -> Iterator[None]:
    """The commands' printing through ReaderGone, for as long as a command runs."""
    before = sys.stdout
    sys.stdout = before if isinstance(before, ReaderGone) else ReaderGone(before)
    try:
        yield
    finally:
        sys.stdout = before
