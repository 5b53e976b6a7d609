"""The command line as a user meets it, with no server running: help, version, and start-up failures that end
with one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest

import sqs2pg
from sqs2pg import cli

QUEUE = "http://127.0.0.1:9/123456789012/orders.fifo"
VALID = {
    "DATABASE_URL": "postgresql://app:s3cret@127.0.0.1:9/app",
    "SQS_QUEUE_URLS": QUEUE,
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:9",  # the discard port: nothing listens there
    "HTTP_PORT": "0",
}


def _clean_environment() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("SQS2PG_", "AWS_")) and k not in {*VALID, "PYTHONPATH"}
    }


def sqs2pg_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m sqs2pg ARGS` in a process of its own, outside the checkout, as a user runs it."""
    with tempfile.TemporaryDirectory() as elsewhere:  # not the checkout, whose service/ folder would be importable
        return subprocess.run(
            [sys.executable, "-m", "sqs2pg", *args],
            env={**_clean_environment(), **env},
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
        )


def sqs2pg_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The same command run in this process (what is tested is parsing and wording; a process costs a second)."""
    out, err = io.StringIO(), io.StringIO()
    handlers = logging.getLogger().handlers[:]
    environment = {**_clean_environment(), **env}
    with (
        mock.patch.dict(os.environ, environment, clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:  # --help, --version, and argparse's own usage errors
            code = int(exit_.code or 0)
        finally:
            logging.getLogger().handlers[:] = handlers
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def assert_one_line_exit_2(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for text in expected:
        assert text in lines[0], lines[0]
    assert "s3cret" not in result.stderr + result.stdout
    return lines[0]


def test_version_and_help_name_every_command_and_the_environment() -> None:
    version = sqs2pg_process("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"sqs2pg {sqs2pg.__version__}")
    top = sqs2pg_cli("--help").stdout
    for command in ("run", "migrate", "check", "dlq"):
        assert f"\n    {command} " in top, top
    run_help = sqs2pg_cli("run", "--help").stdout
    for variable in ("DATABASE_URL", "SQS_QUEUE_URLS", "AWS_REGION", "HTTP_PORT", "HANDLER", "SQS2PG_RECEIVE_WAIT_S"):
        assert variable in run_help, variable
    stats_help = sqs2pg_cli("dlq", "stats", "--help").stdout
    assert "--queue" in stats_help


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "DATABASE_URL is required"),
        ({**VALID, "DATABASE_URL": "postgresql://app:s3cret@db:99999/app"}, "port 99999"),
        ({**VALID, "SQS2PG_RECIEVE_WAIT_S": "5"}, "unknown setting(s): SQS2PG_RECIEVE_WAIT_S"),
        ({**VALID, "AWS_ENDPOINT_URL_SQS": "http://localhost:70000"}, "AWS_ENDPOINT_URL_SQS"),
        # a raw @ in the password: the hint, and not one character of the password (the rest used to leak)
        ({**VALID, "DATABASE_URL": "postgresql://postgres:S3cr@t-s3cret@db/app"}, "percent-encode it as %40"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(env: dict[str, str], expected: str) -> None:
    line = assert_one_line_exit_2(sqs2pg_cli("run", **env), "sqs2pg run: invalid configuration", expected)
    if not env:  # every missing variable in the same line
        assert "SQS_QUEUE_URLS is required" in line


def test_http_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = sqs2pg_cli("run", **{**VALID, "HTTP_PORT": port, "SQS2PG_HTTP_HOST": "127.0.0.1"})
    assert_one_line_exit_2(result, f"127.0.0.1:{port}", "HTTP_PORT")


def test_unreachable_sqs_at_start_is_one_line_and_exit_2() -> None:
    commands = (["run"], ["dlq", "stats"], ["dlq", "peek"], ["dlq", "redrive", "--dry-run"])
    with ThreadPoolExecutor(len(commands)) as pool:  # each retries a refused connection for a few seconds
        results = list(pool.map(lambda command: sqs2pg_process(*command, **VALID), commands))
    for result in results:
        assert_one_line_exit_2(result, "cannot reach SQS at http://127.0.0.1:9", "AWS_ENDPOINT_URL_SQS")


def test_unreachable_database_at_migrate_is_one_line_and_exit_2() -> None:
    line = assert_one_line_exit_2(sqs2pg_cli("migrate", **VALID), "sqs2pg migrate: cannot migrate", "DATABASE_URL")
    assert "postgresql://app:***@127.0.0.1:9/app" in line


def test_handler_that_cannot_be_imported_is_one_line_and_exit_2() -> None:
    assert_one_line_exit_2(
        sqs2pg_cli("run", **{**VALID, "HANDLER": "nosuchmodule:handle"}), "HANDLER='nosuchmodule:handle'"
    )
    # The package's name before 0.2: the line says what it is called now (outside the checkout, whose service/
    # folder is that name).
    assert_one_line_exit_2(
        sqs2pg_process("run", **{**VALID, "HANDLER": "service.handler:insert_event"}), "sqs2pg.handler:insert_event"
    )


def test_a_handler_name_that_is_not_there_is_told_the_handlers_that_are() -> None:
    line = assert_one_line_exit_2(sqs2pg_cli("run", **{**VALID, "HANDLER": "sqs2pg.handler:nope"}), "has no 'nope'")
    assert "insert_event" in line
    assert "insert_events" not in line  # a batch form (it takes a list of messages), not a handler one may name


def test_dlq_queue_option_must_name_a_configured_queue() -> None:
    assert_one_line_exit_2(
        sqs2pg_cli("dlq", "stats", "--queue", "other.fifo", **VALID), "'other.fifo' is not one of SQS_QUEUE_URLS"
    )


def test_send_takes_any_queue_url_but_only_a_configured_queue_name() -> None:
    from sqs2pg.cli.common import queue_urls
    from sqs2pg.config import load
    from sqs2pg.errors import StartupError

    settings = load(VALID)
    other = "http://127.0.0.1:1/123456789012/elsewhere.fifo"
    assert queue_urls(settings, other, any_url=True) == [other]
    assert queue_urls(settings, None, any_url=True) == [VALID["SQS_QUEUE_URLS"]]
    with pytest.raises(StartupError, match="'elsewhere.fifo' is not one of SQS_QUEUE_URLS"):
        queue_urls(settings, "elsewhere.fifo", any_url=True)
