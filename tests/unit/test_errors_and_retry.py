import random

import asyncpg
import botocore.exceptions
import pytest

from sqs2pg.consume.policy import HOLD, Retries, backoff_s, decide
from sqs2pg.errors import (
    Abandoned,
    DeadLetterFailed,
    IdempotencyKeyReused,
    InvalidMessage,
    NotAttempted,
    Outcome,
    PermanentError,
    RetryableError,
    classify,
)


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
    for attempt in range(1, 12):
        ceiling = min(300, 2 * 2 ** (attempt - 1))
        samples = [backoff_s(attempt, 2, 300, rng) for _ in range(200)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples), (attempt, samples[:5])
    assert len({backoff_s(6, 2, 300, rng) for _ in range(100)}) > 5  # jittered, not fixed
    assert backoff_s(100, 2, 300, rng) <= 300


RETRIES = Retries(base_s=2, cap_s=300, max_attempts=3)


def test_permanent_failures_are_dead_lettered_and_transient_ones_retried_in_place_until_the_cap() -> None:
    perm = decide(InvalidMessage("x"), 0, RETRIES, circuit_open=False)
    assert perm.outcome is Outcome.DEAD_LETTERED and perm.error is not None and perm.error.kind == "invalid_message"
    first = decide(RetryableError("x", kind="deadlock"), 0, RETRIES, circuit_open=False, rng=random.Random(1))
    assert first.outcome is Outcome.RETRIED and 1 <= first.delay_s <= 2
    second = decide(RetryableError("x", kind="deadlock"), 1, RETRIES, circuit_open=False, rng=random.Random(1))
    assert second.outcome is Outcome.RETRIED and 2 <= second.delay_s <= 4
    # the third transient failure of a message reaches SQS2PG_RETRY_MAX_ATTEMPTS (3): dead-lettered by sqs2pg,
    # with the reason, rather than left for SQS's own reasonless move
    last = decide(RetryableError("deadlock detected", kind="deadlock"), 2, RETRIES, circuit_open=False)
    assert last.outcome is Outcome.DEAD_LETTERED and last.error is not None
    assert last.error.kind == "retries_exhausted" and "deadlock: deadlock detected" in str(last.error)


def test_a_failed_dead_lettering_is_tried_again_whatever_the_attempts() -> None:
    again = decide(DeadLetterFailed("the DLQ did not answer"), 7, RETRIES, circuit_open=False)
    assert again.outcome is Outcome.RETRIED and again.delay_s > 0


def test_held_while_the_circuit_is_open_or_never_tried_released_when_cut_at_shutdown() -> None:
    assert decide(RetryableError("x", kind="connection"), 0, RETRIES, circuit_open=True) is HOLD
    assert decide(NotAttempted(), 5, RETRIES, circuit_open=False) is HOLD
    assert decide(Abandoned(), 0, RETRIES, circuit_open=False).outcome is Outcome.RELEASED
    assert decide(Outcome.COMMITTED, 0, RETRIES, circuit_open=True).outcome is Outcome.COMMITTED


def test_the_database_failing_is_told_apart_from_the_handler_failing() -> None:
    assert classify(asyncpg.exceptions.ConnectionFailureError("x")).from_database
    assert classify(asyncpg.exceptions.UniqueViolationError("dup")).from_database  # a constraint: the database's
    assert not classify(KeyError("customer_id")).from_database  # the handler's own code
    assert not classify(_client_error("InternalError", 500)).from_database  # SQS's


def test_a_missing_database_counts_as_the_database_being_unavailable() -> None:
    """3D000 opens the circuit like a refused connection: good messages must not burn their receives."""
    from sqs2pg.errors import AVAILABILITY_KINDS

    assert classify(asyncpg.exceptions.InvalidCatalogNameError("x")).kind in AVAILABILITY_KINDS
