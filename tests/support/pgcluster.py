"""Private PostgreSQL servers for fault tests: restart them, kill them, fail over between them.

Each cluster gets its own data directory and loopback port, so the shared server the other tests use is never
touched. Needs PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup); as root, they run as the
``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .servers import free_port


def bindir() -> Path | None:
    on_path = shutil.which("initdb")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or ([on_path] if on_path else [])
    return Path(found[-1]).parent if found else None


class Cluster:
    def __init__(self, root: Path, name: str) -> None:
        found = bindir()
        assert found is not None, "PostgreSQL server binaries not found"
        self.bin = found
        self.datadir = root / name
        self.port = free_port()
        self.log = root / f"{name}.log"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}/{db}"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                "fsync = off\nwal_level = replica\nmax_wal_senders = 5\nwal_keep_size = '64MB'\n"
            )

    def replica_of(self, primary: Cluster) -> None:
        """A streaming replica of ``primary``, which waits for it on every commit (synchronous)."""
        self._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(self.datadir),
            "-R",
            "-X",
            "stream",
            "--no-sync",
        )
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\n")
        with open(primary.datadir / "postgresql.conf", "a") as conf:
            conf.write("\nsynchronous_standby_names = '*'\nsynchronous_commit = on\n")
        primary._run("pg_ctl", "-D", str(primary.datadir), "reload")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False)

    def promote(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-w", "promote")


class Clusters:
    """Creates clusters under one temporary directory and removes them all at the end."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sqs2pg-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.clusters: list[Cluster] = []

    def new(self, name: str) -> Cluster:
        c = Cluster(self.root, name)
        self.clusters.append(c)
        return c

    def close(self) -> None:
        for c in self.clusters:
            c.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def wait_accepting(cluster: Cluster, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", cluster.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"cluster on {cluster.port} did not come up")
