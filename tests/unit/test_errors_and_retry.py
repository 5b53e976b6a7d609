import random

import asyncpg
import botocore.exceptions
import pytest

from sqs2pg.consume.policy import backoff_s
from sqs2pg.consume.policy import on_failure as decide
from sqs2pg.errors import IdempotencyKeyReused, InvalidMessage, Outcome, PermanentError, RetryableError, classify


def _client_error(code: str, status: int = 400) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ReceiveMessage"
    )


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (asyncpg.exceptions.AdminShutdownError("terminating"), "failover"),
        (asyncpg.exceptions.ReadOnlySQLTransactionError("read-only"), "failover"),
        (asyncpg.exceptions.CannotConnectNowError("starting up"), "failover"),
        (asyncpg.exceptions.ConnectionFailureError("x"), "connection"),
        (asyncpg.exceptions.SerializationError("x"), "serialization"),
        (asyncpg.exceptions.DeadlockDetectedError("x"), "deadlock"),
        (asyncpg.exceptions.QueryCanceledError("statement timeout"), "statement_timeout"),
        (asyncpg.exceptions.TooManyConnectionsError("x"), "resources"),
        (asyncpg.exceptions.UndefinedTableError("no events"), "schema"),
        (asyncpg.exceptions.InvalidCatalogNameError("database does not exist"), "database_missing"),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed"), "connection"),
        (ConnectionResetError("reset"), "connection"),
        (TimeoutError(), "timeout"),
        (_client_error("ThrottlingException"), "sqs_throttled"),
        (_client_error("InternalError", 500), "sqs_unavailable"),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), "sqs_unavailable"),
    ],
)
def test_transient_failures_are_retryable(exc: BaseException, kind: str) -> None:
    err = classify(exc)
    assert isinstance(err, RetryableError)
    assert err.kind == kind


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (asyncpg.exceptions.UniqueViolationError("dup"), "constraint"),
        (asyncpg.exceptions.NotNullViolationError("null"), "constraint"),
        (asyncpg.exceptions.InvalidTextRepresentationError("bad json"), "data"),
        (asyncpg.exceptions.UntranslatableCharacterError("\\u0000"), "data"),
        (asyncpg.exceptions.RaiseError("rejected by trigger"), "rejected"),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), "data"),
        (KeyError("customer_id"), "handler"),
        (InvalidMessage("body must be a JSON object"), "invalid_message"),
        (IdempotencyKeyReused(), "key_reused"),
        (_client_error("AccessDenied"), "sqs_AccessDenied"),
    ],
)
def test_permanent_failures_are_permanent(exc: BaseException, kind: str) -> None:
    err = classify(exc)
    assert isinstance(err, PermanentError)
    assert err.kind == kind


def test_every_error_has_a_message() -> None:
    assert str(IdempotencyKeyReused()) == "The idempotency key was already committed with a different body."


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for count in range(1, 12):
        ceiling = min(300, 2 * 2 ** (count - 1))
        samples = [backoff_s(count, 2, 300, rng) for _ in range(200)]
        assert all(max(1, ceiling / 2) <= s <= max(1, -(-ceiling // 1)) for s in samples), (count, samples[:5])
    assert len({backoff_s(6, 2, 300, rng) for _ in range(100)}) > 5  # jittered, not fixed
    assert backoff_s(100, 2, 300, rng) <= 300


def test_decision_dead_letters_permanent_and_retries_transient() -> None:
    perm = decide(InvalidMessage("x"), 1, 2, 300)
    assert perm.outcome is Outcome.DEAD_LETTERED and perm.visibility_s == 0
    retry = decide(RetryableError("x"), 3, 2, 300, random.Random(1))
    assert retry.outcome is Outcome.RETRIED and 4 <= retry.visibility_s <= 8


def test_a_missing_database_counts_as_the_database_being_unavailable() -> None:
    """3D000 opens the circuit like a refused connection: good messages must not burn their receives."""
    from sqs2pg.errors import AVAILABILITY_KINDS

    assert classify(asyncpg.exceptions.InvalidCatalogNameError("x")).kind in AVAILABILITY_KINDS
