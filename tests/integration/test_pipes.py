"""The installed `sqs2pg` under a shell pipe whose reader stops early (`| head -1`): the output stops quietly,
the work goes on to its end, the exit code is the command's own (never the "cannot start" 2), and no
traceback or BrokenPipeError reaches the terminal."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from ..support.helpers import Queues
from ..support.servers import ROOT

pytestmark = pytest.mark.integration

SQS2PG = ROOT / ".venv" / "bin" / "sqs2pg"


async def _piped(command: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`sqs2pg COMMAND | head -1` in bash: (sqs2pg's exit code, what head printed, sqs2pg's stderr)."""
    script = f'{shlex.quote(str(SQS2PG))} {command} 2>"$ERR" | head -1; exit ${{PIPESTATUS[0]}}'
    err = Path(env["ERR"])
    done = await asyncio.to_thread(
        subprocess.run, ["bash", "-c", script], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout, err.read_text()


async def test_send_print_keys_into_head_sends_everything_and_says_so(queues: Queues, tmp_path: Path) -> None:
    writes = tmp_path / "writes.jsonl"
    writes.write_text("".join(json.dumps({"group": f"g{i % 7}", "body": {"n": i}}) + "\n" for i in range(300)))
    env = {"SQS_QUEUE_URLS": queues.url, "ERR": str(tmp_path / "err")}
    code, head, err = await _piped(f"send {writes} --print-keys", env)
    assert code == 0, err
    assert len(head.splitlines()) == 1 and len(head.split("\t")) == 3  # the first key, group, message id
    assert "300 sent to" in err and "0 failed" in err, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert await queues.depth(queues.url) == 300  # every line was sent, not only those head read


async def test_check_and_dlq_peek_into_head_exit_with_their_own_code(
    database_url: str, queues: Queues, tmp_path: Path
) -> None:
    env = {"SQS_QUEUE_URLS": queues.url, "DATABASE_URL": database_url, "ERR": str(tmp_path / "err")}
    code, head, err = await _piped("check", env)
    assert code == 0 and head.startswith("ok"), (code, head, err)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    for i in range(30):
        await queues.client.send_message(
            QueueUrl=queues.dlq_url, MessageBody=json.dumps({"n": i}), MessageGroupId="g", MessageDeduplicationId=str(i)
        )
    code, head, err = await _piped("dlq peek --limit 30", env)
    assert code == 0 and head.strip(), (code, head, err)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
