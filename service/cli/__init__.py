"""The command line: `sqs2pg run | migrate | check | send | status | drill | dlq | quarantine | local-sqs`, one
module each.

Every command reads its configuration from the environment (config.py). A command that cannot start says why
in one line on stderr and exits 2 (EXIT_CANNOT_START); the traceback is shown only with
SQS2PG_LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
import sys
import traceback

from .. import config
from ..config import PREFIX
from ..database_url import scrub
from ..errors import StartupError
from ..observe import logs, traces
from ..version import __version__
from . import check, dlq, drill, local_sqs, migrate, quarantine, run, send, status
from .common import EXIT_CANNOT_START, EXIT_FAILED, Command, in_loop, quiet_when_reader_goes

__all__ = ["EXIT_CANNOT_START", "EXIT_FAILED", "main"]

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        run.COMMAND,
        migrate.COMMAND,
        check.COMMAND,
        send.COMMAND,
        status.COMMAND,
        drill.COMMAND,
        dlq.COMMAND,
        quarantine.COMMAND,
        local_sqs.COMMAND,
    )
}

DESCRIPTION = """\
Apply SQS FIFO messages to PostgreSQL exactly once, in order per message group.
Configuration comes from the environment: `sqs2pg run --help` lists every variable."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sqs2pg", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"sqs2pg {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for command in COMMANDS.values():
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    with quiet_when_reader_goes():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    command = COMMANDS[args.command]
    name = {
        "dlq": f"dlq {getattr(args, 'dlq_command', '')}",
        "quarantine": f"quarantine {getattr(args, 'quarantine_command', '')}",
    }.get(command.name, command.name)
    debug = os.environ.get(PREFIX + "LOG_LEVEL", "").strip().upper() == "DEBUG"
    try:
        settings = config.load(require_database=command.needs_database, require_queues=command.needs_queues)
        logs.setup(settings.log_level)
        if (warning := traces.setup()) is not None:  # OTEL_* asks for traces the install cannot send
            if command.name == "run":
                logs.event(logging.WARNING, warning, "start")
            else:
                print(f"sqs2pg {name}: {warning}", file=sys.stderr)
        result = command.run(settings, args)
        return in_loop(result) if inspect.isawaitable(result) else result  # type: ignore[arg-type]
    except StartupError as exc:
        return _cannot_start(name, str(exc), exc, debug)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"sqs2pg {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback (unless DEBUG)
        return _cannot_start(name, f"unexpected error: {type(exc).__name__}: {exc}", exc, debug)
    finally:
        traces.shutdown()  # the spans still buffered are sent (for a few seconds at most)


def _cannot_start(command: str, message: str, exc: BaseException, debug: bool) -> int:
    if debug:
        print(scrub("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
    hint = "" if debug else " (SQS2PG_LOG_LEVEL=DEBUG shows the traceback)" if "unexpected error" in message else ""
    print(scrub(f"sqs2pg {command}: {message}{hint}"), file=sys.stderr, flush=True)
    return EXIT_CANNOT_START


if __name__ == "__main__":
    sys.exit(main())
