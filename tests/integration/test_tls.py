"""TLS to PostgreSQL as deploy/terraform's DATABASE_URL asks for it: sslmode=verify-full checks the server's
certificate and name, and sslrootcert=system (libpq 16's word for "the system's trusted CAs", which RDS
Proxy's ACM certificates chain to) means the same to sqs2pg as to libpq.

A private PostgreSQL server of this test's own presents a certificate for localhost signed by a CA made here,
which the system does not trust: verified against that CA the connection works, against the system's CAs it
is refused with one line, and under a name the certificate does not carry it is refused too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..support.helpers import run_cli
from ..support.pgcluster import Clusters, bindir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bindir() is None, reason="needs PostgreSQL server binaries (initdb, pg_ctl)"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make certificates"),
]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificates(where: Path) -> None:
    """ca.crt, and server.crt/server.key for DNS:localhost and IP:127.0.0.1 signed by it."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sqs2pg test CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=where)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
             "-out", "server.csr", cwd=where)  # fmt: skip
    (where / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=where)  # fmt: skip


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """(port, the CA file): a PostgreSQL server that takes TLS connections only, with a certificate for localhost."""
    clusters = Clusters()
    try:
        pg = clusters.new("tls")
        await asyncio.to_thread(pg.init)
        await asyncio.to_thread(_certificates, tmp_path)
        for name in ("server.crt", "server.key"):
            target = pg.datadir / name
            shutil.copy(tmp_path / name, target)
            target.chmod(0o600)
            if os.geteuid() == 0:
                shutil.chown(target, "postgres", "postgres")
        with open(pg.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                "listen_addresses = '127.0.0.1,127.0.0.2'\n"  # 127.0.0.2: a name the certificate does not carry
            )
        # TLS or nothing, as rds.force_ssl and RDS Proxy's require_tls have it.
        (pg.datadir / "pg_hba.conf").write_text(
            "hostssl all all 127.0.0.1/32 trust\nhostssl all all 127.0.0.2/32 trust\n"
        )
        await asyncio.to_thread(pg.start)
        yield pg.port, tmp_path / "ca.crt"
    finally:
        await asyncio.to_thread(clusters.close)


async def _migrate(url: str) -> subprocess.CompletedProcess[str]:
    return await run_cli("migrate", env={"DATABASE_URL": url, "SQS2PG_DB_CONNECT_TIMEOUT_S": "5"})


async def test_verify_full_connects_to_a_server_whose_certificate_it_can_check(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    done = await _migrate(f"postgresql://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={ca}")
    assert done.returncode == 0, done.stderr
    # and the plain connection the server refuses is refused, so TLS is what made the difference
    plain = await _migrate(f"postgresql://postgres@localhost:{port}/postgres?sslmode=disable")
    assert plain.returncode != 0


async def test_sslrootcert_system_checks_the_server_against_the_systems_cas(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server
    refused = await _migrate(f"postgresql://postgres@localhost:{port}/postgres?sslrootcert=system")
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "certificate" in lines[0].lower(), lines[0]


async def test_verify_full_refuses_a_name_the_certificate_does_not_carry(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    # The certificate names localhost and 127.0.0.1; 127.0.0.2 is the same server under another name.
    refused = await _migrate(f"postgresql://postgres@127.0.0.2:{port}/postgres?sslmode=verify-full&sslrootcert={ca}")
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr and "127.0.0.2" in refused.stderr, refused.stderr
    # the same URL with sslmode=require (encrypted, unverified) connects: the name is what was refused
    done = await _migrate(f"postgresql://postgres@127.0.0.2:{port}/postgres?sslmode=require")
    assert done.returncode == 0, done.stderr


async def test_sslrootcert_system_with_a_weaker_sslmode_is_a_setting_error() -> None:
    done = await _migrate("postgresql://postgres@localhost:5432/postgres?sslmode=require&sslrootcert=system")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "sslmode=verify-full" in done.stderr, done.stderr


async def test_verify_full_without_a_ca_file_says_how_to_name_one(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server
    done = await _migrate(f"postgresql://postgres@localhost:{port}/postgres?sslmode=verify-full")
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "sslrootcert=system" in done.stderr, done.stderr
