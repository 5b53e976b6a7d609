"""`sqs2pg local-sqs`: a local SQS for development (sqs/local.py): moto's server with its FIFO flaws fixed."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Settings
from ..sqs import local
from .common import RAW, Command


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "local-sqs",
        help="a local SQS for development: moto's server with its FIFO flaws fixed (needs sqs2pg[local])",
        formatter_class=RAW,
        description="Serve a local SQS (moto's server, its FIFO receive fixed to keep groups in order as SQS does) "
        "until Ctrl-C, make each --queue with its dead-letter queue, and print the settings that point sqs2pg at "
        "it. Needs moto: pip install 'sqs2pg[local]'.",
        epilog="Run it in one shell and paste the export lines it prints into another.",
    )
    local.add_arguments(p, default_port=4566)
    return p


def run(settings: Settings, args: argparse.Namespace) -> int:
    return local.serve(args.host, args.port, args.queue, args.max_receive_count, args.plain)


COMMAND = Command("local-sqs", add_parser, run, needs_database=False, needs_queues=False)
