"""The connections to PostgreSQL: a pool opened once, a connection per transaction (bounded in time, and thrown
away when it points at the wrong server), the probe that tells whether the database answers, and the one line
that tells an operator why it does not (and whether waiting can help)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

from .. import database_url
from ..config import Settings
from ..errors import DatabaseUnavailable, SchemaMissing, TransactionTimeout, classify
from ..message import Message
from ..observe import traces
from . import records

# A connection that reports these is pointed at the wrong server (old writer, read-only) or is being shut
# down: throw it away instead of handing it to the next message.
_DISCARD_SQLSTATES = {"25006", "57P01", "57P02", "57P03"}


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection goes through on its way back to the pool: nothing beyond asyncpg's own clean-up (which
    rolls back a transaction left open). asyncpg's default also runs RESET ALL, UNLISTEN and unlocks advisory
    locks: a round trip per message, about 5% of the service's CPU in the benchmark. sqs2pg ends every
    transaction itself, so only session-level changes a handler makes would outlive a message; the handler
    contract says to make them transaction-local (SET LOCAL, pg_advisory_xact_lock)."""


class Connections:
    """The pool, and how a transaction gets a connection from it. The store (store.py) is one."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._begin = settings.begin()
        self._pool: asyncpg.Pool | None = None
        self._database = database_url.database_name(settings.database_url)  # for traces
        self.last_success = 0.0  # monotonic time of the last successful transaction
        # what must read the database before the first message (SQS2PG_MAPPING's tables): done by the first probe
        # that reaches it; until it succeeds the database counts as unavailable, with its reason
        self.prepare: Callable[[asyncpg.Connection], Awaitable[None]] | None = None

    async def open(self) -> None:
        # min_size=0: the service starts (and reports not ready) while the database is still down.
        self._pool = await asyncpg.create_pool(
            min_size=0,
            max_size=self._settings.pool_size,
            max_inactive_connection_lifetime=120,
            reset=_keep_session,
            **self._settings.connect_kwargs(),
        )

    async def close(self, timeout_s: float = 5.0) -> None:
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), timeout_s)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                self._pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "Store.open() was not called"
        return self._pool

    @contextlib.asynccontextmanager
    async def _connection(
        self, traced: list[Message] | None = None, purpose: str = "apply"
    ) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for one transaction, which may last SQS2PG_TRANSACTION_TIMEOUT_S. One that reports
        it points at the wrong server (old writer, read-only) or is being shut down, or whose transaction ran out
        of time, is thrown away instead of going back to the pool. ``traced``: the messages it is for, and ``purpose``
        what it does for them (its span's)."""
        with traces.transaction(traced, self._database, purpose) if traced else contextlib.nullcontext():
            conn = await self._acquire()
            limit = self._settings.transaction_timeout_s
            try:
                async with asyncio.timeout(limit) as bound:
                    yield conn
            except TimeoutError as exc:
                if not bound.expired():
                    raise  # some other timeout (a statement's own, the client side of statement_timeout)
                conn.terminate()  # it may be mid-statement: the server rolls back a dropped connection
                raise TransactionTimeout(f"the transaction ran longer than {limit:g} s and was rolled back") from exc
            except asyncpg.PostgresError as exc:
                if getattr(exc, "sqlstate", None) in _DISCARD_SQLSTATES:
                    conn.terminate()
                raise
            finally:
                await self.pool.release(conn)

    async def _acquire(self) -> asyncpg.Connection:
        """A pooled connection. Failing to get one is never the message's fault: whatever the server said
        (even "database is not accepting connections", 55000, during a failover), it is DatabaseUnavailable."""
        try:
            return await self.pool.acquire(timeout=self._settings.db_connect_timeout_s)
        except Exception as exc:
            error = classify(exc)
            raise DatabaseUnavailable(f"cannot connect: {error}", kind="connection") from exc

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """True when the database answers a trivial query within the timeout."""
        return await self.probe(timeout_s) is None

    async def unavailable(self, timeout_s: float = 2.0) -> str | None:
        """None when the database answers (and sqs2pg's table is there), else why not, in one line (no password)."""
        problem = await self.probe(timeout_s)
        return None if problem is None else describe_database_error(problem, self._settings.redacted_database_url())

    async def probe(self, timeout_s: float = 2.0) -> Exception | None:
        """None when the database answers a trivial query within the timeout and sqs2pg's table is there, else
        what went wrong."""
        try:
            async with self.pool.acquire(timeout=timeout_s) as conn:
                migrated = await conn.fetchval(records.MIGRATED, timeout=timeout_s)
                if migrated == 2 and self.prepare is not None:
                    await self.prepare(conn)
                    self.prepare = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason is for the log
            return exc
        if migrated != 2:
            # Messages would only fail and burn their receive counts: wait for the schema like for the server.
            return SchemaMissing(
                "table sqs2pg_idempotency does not exist"
                if migrated == 0
                else "table sqs2pg_idempotency is older than this version of sqs2pg"
            )
        self.last_success = time.monotonic()
        return None


_DATABASE_HINTS = {
    "3D000": "create the database, or fix its name in DATABASE_URL",
    "28P01": "check the user and password in DATABASE_URL",
    "28000": "check the user in DATABASE_URL and the server's pg_hba.conf",
    "42704": "DATABASE_URL has a parameter the driver passes to the server as a setting and the server does not"
    " know: remove it",
}


# A pooler (PgBouncer) refuses with 08P01 whatever it refuses: what it refused is in the message.
_POOLER_REFUSALS = (
    (
        re.compile(r"unsupported startup parameter: (\S+)"),
        "the pooler in front of PostgreSQL refuses the connection parameter {0}: set SQS2PG_DB_POOLER=transaction "
        "(sqs2pg then sets it in each transaction), or have the pooler accept it",
    ),
    (
        re.compile(r'database "[^"]*" does not exist'),
        "the pooler knows no such database: fix DATABASE_URL or its [databases]",
    ),
    (
        re.compile(r"authentication failed|no such user"),
        "the pooler refused the user: check DATABASE_URL and its auth_file",
    ),
)


def _pooler_refusal(exc: BaseException) -> str | None:
    if getattr(exc, "sqlstate", None) != "08P01":
        return None
    return next(
        (hint.format(*m.groups()) for pattern, hint in _POOLER_REFUSALS if (m := pattern.search(str(exc)))), None
    )


def describe_database_error(exc: BaseException, database: str) -> str:
    """One line for an operator: what the database said, which one (``database``, redacted), what to check."""
    cause = exc.__cause__ if isinstance(exc, DatabaseUnavailable) and exc.__cause__ is not None else exc
    what = " ".join(f"{type(cause).__name__}: {cause}".split()) if str(cause) else type(cause).__name__
    if isinstance(cause, SchemaMissing):
        return f"{cause} in {database}: run `sqs2pg migrate`"
    hint = _DATABASE_HINTS.get(
        getattr(cause, "sqlstate", None) or "", "check DATABASE_URL and that the server is up and reachable"
    )
    if (refused := _pooler_refusal(cause)) is not None:
        hint = refused
    elif getattr(cause, "sqlstate", None) in ("26000", "42P05"):
        hint = "a pooler hands out server connections per transaction: set SQS2PG_DB_POOLER=transaction"
    elif isinstance(cause, ssl.SSLCertVerificationError):
        hint = (
            "the server's certificate does not verify against DATABASE_URL's sslrootcert, or does not name the host "
            "(RDS Proxy: sslrootcert=system; Aurora itself: sslrootcert=FILE with the RDS CA bundle)"
        )
    elif "root certificate" in str(cause):
        hint = "name the CAs to verify the server with: sslrootcert=FILE, or sslrootcert=system for the system's CAs"
    elif "SSL" in str(cause):
        hint = "check sslmode in DATABASE_URL against what the server accepts"
    return f"{what[:240]} (database {database}): {hint}"


def database_misconfigured(exc: BaseException) -> bool:
    """A connection failure that the same settings will meet again however long one waits: wrong credentials, a
    parameter the server rejects, an SSL mode it refuses, a malformed URL. (A server still booting, a database
    not created yet or a network outage are worth waiting for; these are not.)"""
    state = getattr(exc, "sqlstate", None) or ""
    if state.startswith("28") or state == "42704" or _pooler_refusal(exc) is not None:
        return True
    if isinstance(exc, asyncpg.ClientConfigurationError) or (
        isinstance(exc, ValueError) and not isinstance(exc, UnicodeError)
    ):
        return True
    return isinstance(exc, ConnectionError) and "SSL" in str(exc)
