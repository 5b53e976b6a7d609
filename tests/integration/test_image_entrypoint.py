"""The built wheel, installed as a user installs it and run the way the image runs it.

A plain virtual environment with requirements.lock, then sqs2pg's wheel built from the source (not editable),
bytecode writes off, a working directory with nothing in it, and (when the tests run as root) an unprivileged
uid that cannot write to the environment, as USER 10001 in the image. No MIGRATIONS_DIR: the migrations
travel inside the package. Then `sqs2pg migrate`, `sqs2pg check` and `sqs2pg run` with environment
variables only, a message through, SIGTERM, exit code 0. (scripts/image-check.sh builds and runs the image
itself.)
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ..support.helpers import REGION, Queues, wait_until
from ..support.servers import free_port

# Nothing here depends on how the SQS server behaves: one server is enough.
pytestmark = [pytest.mark.integration, pytest.mark.one_sqs]
ROOT = Path(__file__).resolve().parents[2]
IMAGE_UID = 10001  # USER in the Dockerfile


@pytest.fixture(scope="session")
def image_venv() -> Path:
    """A venv like the image's /opt/venv: the lock's dependencies (kept between runs, keyed by the lock),
    then this checkout's sqs2pg reinstalled, not editable."""
    lock = (ROOT / "requirements.lock").read_bytes()
    venv = ROOT / ".local" / f"image-venv-{hashlib.sha256(lock).hexdigest()[:12]}"
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
    ]
    if not (venv / ".deps-installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([*pip, "-r", str(ROOT / "requirements.lock")], check=True)
        (venv / ".deps-installed").touch()
    build = Path(tempfile.mkdtemp(prefix="sqs2pg-build-"))
    try:  # only what the Dockerfile copies into its build stage
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, build / name)
        for name in ("service", "migrations"):
            shutil.copytree(ROOT / name, build / name, ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "-w",
                str(build / "dist"),
                str(build),
            ],
            check=True,
        )
        wheel = next((build / "dist").glob("sqs2pg-*.whl"))
        subprocess.run([*pip, "--no-deps", "--force-reinstall", str(wheel)], check=True)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return venv


@pytest.fixture
def app_dir() -> Iterator[Path]:
    """The image's working directory: empty, and it must stay so."""
    path = Path(tempfile.mkdtemp(prefix="sqs2pg-app-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _command(venv: Path, *args: str) -> list[str]:
    cmd = [str(venv / "bin" / "sqs2pg"), *args]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        cmd = ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups", *cmd]
    return cmd


async def test_the_wheel_installed_in_a_plain_venv_migrates_checks_and_runs_as_the_image_runs_it(
    image_venv: Path, app_dir: Path, database_url: str, db: asyncpg.Connection, queues: Queues
) -> None:
    # A database the migrations have not touched yet: the image's `migrate` must create the schema.
    tables = await db.fetchval(
        "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables WHERE schemaname = 'public'"
    )
    await db.execute(f"DROP TABLE {tables}")
    port = free_port()
    env = {
        "PATH": f"{image_venv / 'bin'}:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HTTP_PORT": str(port),
        "DATABASE_URL": database_url,
        "SQS_QUEUE_URLS": queues.url,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL_SQS": os.environ["AWS_ENDPOINT_URL_SQS"],
        "SQS2PG_RECEIVE_WAIT_S": "1",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _command(image_venv, *args), env=env, cwd=app_dir, capture_output=True, text=True, timeout=120
        )

    # The public API a handler author imports, and the version.
    api = subprocess.run(
        [
            str(image_venv / "bin" / "python"),
            "-c",
            "from sqs2pg import Handler, InvalidMessage, Message, Producer, RetryableError, __version__;"
            " print(__version__)",
        ],
        env=env,
        cwd=app_dir,
        capture_output=True,
        text=True,
    )
    assert api.returncode == 0, api.stderr
    assert run("--version").stdout.strip() == f"sqs2pg {api.stdout.strip()}"

    migrated = run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith("database migrated from nothing to "), migrated.stdout
    again = run("migrate")
    assert again.returncode == 0 and again.stdout.startswith("database already at "), again.stdout
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_alembic_version") == 1
    checked = run("check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The image's dependencies trace (the lock holds the otel extra): OTEL_* alone turns it on.
    traced = subprocess.run(
        _command(image_venv, "check"),
        env={**env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "ok    traces on: spans to http://127.0.0.1:4318/v1/traces" in traced.stdout, traced.stdout + traced.stderr

    await queues.send({"seq": 0}, "g", "g-0")
    proc = await asyncio.create_subprocess_exec(
        *_command(image_venv, "run"),
        env=env,
        cwd=app_dir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:

        async def landed() -> bool:
            return bool(await db.fetchval("SELECT count(*) FROM events"))

        await wait_until(landed, timeout_s=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert b'"event": "stopped"' in out
    # Nothing was written into the environment or the app directory (a read-only root would be fine).
    assert not list(image_venv.rglob("sqs2pg/__pycache__"))
    assert not list(app_dir.iterdir())
