"""Debian's PgBouncer in front of the test's PostgreSQL, in transaction mode (a server connection per transaction,
as RDS Proxy multiplexes): what a transaction pooler does to sqs2pg, on a free loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .helpers import through_local_port
from .servers import free_port, wait_for_port


def binary() -> str | None:
    return shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer",) if os.path.exists(p)), None)


class PgBouncer:
    def __init__(self, server_url: str, pool_size: int = 4) -> None:
        """``server_url``: any URL of the PostgreSQL server to put it in front of (its user logs in for every
        client)."""
        self._server = urlsplit(server_url)
        self.pool_size = pool_size
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sqs2pg-pgbouncer-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, database_url: str) -> str:
        """``database_url`` through the pooler: the same user and database, the pooler's address."""
        return through_local_port(database_url, self.port)

    def start(self) -> None:
        user = unquote(self._server.username or "postgres")
        login = f" user={user}" + (f" password={unquote(self._server.password)}" if self._server.password else "")
        (self.dir / "userlist.txt").write_text(f'"{user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={self._server.hostname or '127.0.0.1'} port={self._server.port or 5432}{login}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir / 'userlist.txt'}\n"
            f"pool_mode = transaction\ndefault_pool_size = {self.pool_size}\nmax_client_conn = 200\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\npidfile = {self.dir / 'pgbouncer.pid'}\n"
        )
        command = [str(binary()), str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer will not run as root: it switches to postgres itself (-u)
            shutil.chown(self.dir, "postgres", "postgres")
            for f in self.dir.iterdir():
                shutil.chown(f, "postgres", "postgres")
            command.insert(1, "-u")
            command.insert(2, "postgres")
        self._proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, self._proc)
        except RuntimeError:
            raise RuntimeError(f"pgbouncer did not start:\n{self.log()[-2000:]}") from None

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
