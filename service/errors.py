"""The one place where failures are classified.

Every exception that reaches the consumer is translated here, once, at the boundary where it is caught (the
store for a transaction, the SQS client for a call), into one of two branches:

* ``RetryableError``: the message is fine, the world is not (connection lost, failover, throttling,
  timeouts, serialization conflicts). The message is tried again in place after a backoff.
* ``PermanentError``: retrying cannot help (the handler rejected the body, a constraint or data error,
  an idempotency key reused with another body, a message older than what its group already applied). The
  message goes to the dead-letter queue at once.

Each error carries a ``kind`` (metric label and log field ``error_kind``) and whether the database itself failed
(``from_database``: sqs2pg_db_errors, the circuit breaker). What then happens is consume/policy.py's ``decide``.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
from collections.abc import Iterable

import asyncpg
import botocore.exceptions


class Outcome(enum.StrEnum):
    """Log field and metric label ``outcome`` alike."""

    COMMITTED = "committed"  # applied and committed; deleted from the queue
    DUPLICATE = "duplicate"  # its key was already committed; deleted without applying again
    RETRIED = "retried"  # a transient failure: tried again in place after a backoff (one count per try)
    DEAD_LETTERED = "dead_lettered"  # permanent failure; moved to the dead-letter queue
    RELEASED = "released"  # handed back unprocessed at shutdown, to be received again


class Sqs2pgError(Exception):
    """sqs2pg failed to handle a message."""

    kind = "error"
    from_database = False  # the database itself failed (as opposed to the handler rejecting a body)

    def __init__(self, message: str | None = None, *, kind: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        if kind:
            self.kind = kind


class RetryableError(Sqs2pgError):
    """A transient failure: the message will be retried after a backoff."""

    kind = "transient"


class DatabaseUnavailable(RetryableError):
    """The database could not be reached at all."""

    kind = "connection"
    from_database = True


class TransactionTimeout(RetryableError):
    """A transaction outlived SQS2PG_TRANSACTION_TIMEOUT_S (a handler waiting on what never answers): rolled back,
    its connection discarded, retried later. Not the database's fault: the circuit breaker does not count it."""

    kind = "transaction_timeout"


class NotAttempted(RetryableError):
    """Not tried: the database failed the messages before it in the same pass. Tried again (or held while the
    circuit is open), counting nothing."""

    kind = "not_attempted"


class Behind(RetryableError):
    """Not tried: an earlier message of its group failed in the same pass. Back behind it, counting nothing."""

    kind = "behind"


class Abandoned(RetryableError):
    """The shutdown deadline cut its transaction short (committed or not): handed back; its key decides later."""

    kind = "shutdown"


class DeadLetterFailed(RetryableError):
    """A message could not be dead-lettered (its record or its copy to the DLQ failed): tried again in place."""

    kind = "dead_letter_failed"


class PermanentError(Sqs2pgError):
    """A permanent failure: the message goes to the dead-letter queue."""

    kind = "permanent"


class InvalidMessage(PermanentError):
    """The message is not one the handler can apply."""

    kind = "invalid_message"


class NoMapping(InvalidMessage):
    """No [[table]] (and no [[skip]]) of SQS2PG_MAPPING matches the message."""

    kind = "no_mapping"


class IdempotencyKeyReused(PermanentError):
    """The idempotency key was already committed with a different body."""

    kind = "key_reused"


class GroupQuarantined(PermanentError):
    """An earlier message of the group was dead-lettered (quarantine_group): this one follows it, until released."""

    kind = "group_quarantined"


class OutOfOrder(PermanentError):
    """The message is older (by SQS's SequenceNumber) than one its group already applied: the SQS server handed
    the group's messages out of order. Applying it now would reorder the group, so it is dead-lettered."""

    kind = "out_of_order"


class RetriesExhausted(PermanentError):
    """Failed transiently SQS2PG_RETRY_MAX_ATTEMPTS times: dead-lettered with the last error (not by SQS)."""

    kind = "retries_exhausted"


class DeadLetteredBefore(PermanentError):
    """A redelivery of a dead-lettered message whose DLQ copy is not known sent: dead-lettered again, never applied."""


class SchemaMissing(Exception):
    """The database answers but sqs2pg's tables are missing or older than this version: run `sqs2pg migrate`."""


class AlreadyApplied(Exception):
    """Raised by a handler that finds the message's effect already in the database: a duplicate."""


class StartupError(Exception):
    """sqs2pg cannot start (or a command cannot run): said in one line with what to do, then exit 2 (not a crash)."""


# SQLSTATEs (or their two-character classes) that mean "try again later".
_RETRYABLE_SQLSTATES: dict[str, str] = {
    "08": "connection",  # connection exception
    "57P01": "failover",  # admin shutdown: terminating connection due to administrator command
    "57P02": "failover",  # crash shutdown
    "57P03": "failover",  # cannot connect now (starting up, shutting down, in recovery)
    "25006": "failover",  # read-only transaction: we are talking to a reader after a failover
    "40001": "serialization",
    "40P01": "deadlock",
    "55P03": "lock_timeout",
    "57014": "statement_timeout",  # query canceled: one slow statement, not an unreachable server
    "53": "resources",  # insufficient resources: too many connections, disk full, out of memory
    "58": "system",  # system error (I/O)
    "XX": "internal",
    "42": "schema",  # undefined table/column, syntax: a deployment problem, not a bad message
    "3D": "database_missing",  # the database named in DATABASE_URL does not exist (yet)
    "28": "auth",  # invalid authorization: wait for the operator, do not dead-letter good messages
    # a prepared statement missing on, or left over on, the server connection a transaction pooler handed out:
    # SQS2PG_DB_POOLER=transaction is not set (a setting to fix, never a message's fault)
    "26000": "pooler",
    "42P05": "pooler",
}

# Error kinds that mean "the database is not there", as opposed to "this message failed": they open the
# circuit breaker, and they fail every message of a shared transaction alike.
AVAILABILITY_KINDS = frozenset(
    {"connection", "failover", "resources", "timeout", "auth", "database_missing", "system", "pooler"}
)

# Everything else from PostgreSQL is permanent; these classes get a clearer kind.
_PERMANENT_SQLSTATES: dict[str, str] = {
    "22": "data",  # data exception: bad value, NUL in text, invalid JSON
    "23": "constraint",  # integrity constraint violation
    "P0": "rejected",  # RAISE EXCEPTION in a trigger or function
}

# Every kind a database failure can be counted under (sqs2pg_db_errors_total): each series exists from the
# start at 0, so the first failure is an increase Prometheus can see.
DATABASE_ERROR_KINDS = tuple(
    sorted(
        set(_RETRYABLE_SQLSTATES.values()) | set(_PERMANENT_SQLSTATES.values()) | {"database", "connection", "timeout"}
    )
)
# The transient kinds of an SQS failure, likewise created at 0 for the calls made all the time.
SQS_TRANSIENT_KINDS = ("sqs_throttled", "sqs_unavailable")

_SQS_THROTTLING = {
    "ThrottlingException",
    "Throttling",
    "RequestThrottled",
    "RequestLimitExceeded",
    "KmsThrottled",
    "TooManyRequestsException",
}
_SQS_UNAVAILABLE = {"ServiceUnavailable", "InternalError", "InternalFailure", "503", "500", "502", "504"}


def _database_message(exc: asyncpg.PostgresError) -> str:
    """PostgreSQL's message with the names it gives (table, column, constraint), never its DETAIL: that is where
    it quotes a row's values ("Failing row contains (...)")."""
    names = [
        f"{what} {value}"
        for what, value in (
            ("table", getattr(exc, "table_name", None)),
            ("column", getattr(exc, "column_name", None)),
            ("constraint", getattr(exc, "constraint_name", None)),
        )
        if value
    ]
    message = str(getattr(exc, "message", None) or str(exc).split("\nDETAIL:", 1)[0])
    return message + (f" ({', '.join(names)})" if names else "")


def without_values(error: Sqs2pgError, values: Iterable[str], limit: int = 300) -> Sqs2pgError:
    """The error with every value of the message's body it quotes replaced by '…' and its text capped, of the same
    class and kind: what leaves sqs2pg (a log line, a DLQ attribute, a dead-letter record) quotes no row or body."""
    text = str(error)
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "…")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return error if text == str(error) else with_text(error, text)


def with_text(error: Sqs2pgError, text: str) -> Sqs2pgError:
    """The same error (class, kind, where it came from) saying ``text``."""
    copy = type(error).__new__(type(error))
    Exception.__init__(copy, text)
    copy.__dict__.update(error.__dict__)
    return copy


def _sqlstate_kind(sqlstate: str, table: dict[str, str]) -> str | None:
    return table.get(sqlstate) or table.get(sqlstate[:2])


def classify(exc: BaseException) -> Sqs2pgError:
    """Translate any exception into a RetryableError or PermanentError (our own pass through), marked
    ``from_database`` when PostgreSQL or the connection to it failed."""
    if isinstance(exc, Sqs2pgError):
        return exc
    if isinstance(exc, botocore.exceptions.ClientError):
        return classify_sqs(exc)
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return RetryableError(f"{type(exc).__name__}: {exc}", kind="sqs_unavailable")
    if isinstance(exc, (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError)):
        return PermanentError(f"{type(exc).__name__}: {exc}", kind="sqs_credentials")
    error = _classify_other(exc)
    error.from_database = isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError))
    return error


def _classify_other(exc: BaseException) -> Sqs2pgError:
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        kind = _sqlstate_kind(state, _RETRYABLE_SQLSTATES)
        detail = f"{state} {type(exc).__name__}: {_database_message(exc)}"
        if kind:
            return RetryableError(detail, kind=kind)
        return PermanentError(detail, kind=_sqlstate_kind(state, _PERMANENT_SQLSTATES) or "database")
    if isinstance(exc, asyncpg.DataError):  # a value the driver cannot encode for its parameter: the message's
        return PermanentError(f"{type(exc).__name__}: {exc}", kind="data")
    if isinstance(exc, (asyncpg.InterfaceError, asyncpg.InternalClientError)):  # the link: closed, protocol
        return RetryableError(f"{type(exc).__name__}: {exc}", kind="connection")
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return RetryableError("timed out", kind="timeout")
    if isinstance(exc, (ConnectionError, ssl.SSLError, OSError)):
        return RetryableError(f"{type(exc).__name__}: {exc}", kind="connection")
    if isinstance(exc, UnicodeError):
        # e.g. a lone surrogate from a JSON escape that cannot be encoded for the database
        return PermanentError(f"{type(exc).__name__}: {exc}", kind="data")
    # Anything else was raised by the handler's own code: retrying the same body gives the same result.
    return PermanentError(f"{type(exc).__name__}: {exc}", kind="handler")


def classify_sqs(exc: botocore.exceptions.ClientError) -> Sqs2pgError:
    """Translate an SQS error response."""
    err, status = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    return sqs_error(str(err.get("Code", "")), str(err.get("Message", "")), str(status))


def sqs_error(code: str, message: str, status: str = "") -> Sqs2pgError:
    """Translate an SQS error code, of a whole call or of one failed batch entry."""
    text = f"{code}: {message}"
    if code in _SQS_THROTTLING:
        return RetryableError(text, kind="sqs_throttled")
    if code in _SQS_UNAVAILABLE or status.startswith("5"):
        return RetryableError(text, kind="sqs_unavailable")
    return PermanentError(text, kind="sqs_" + (code.rsplit(".", 1)[-1] or "client"))
