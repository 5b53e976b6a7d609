"""Every error series exists from the start, at 0: Prometheus sees the first failure as an increase."""

from __future__ import annotations

from sqs2pg.errors import DATABASE_ERROR_KINDS, classify
from sqs2pg.metrics import Metrics


def test_error_counters_exist_at_zero_before_any_error() -> None:
    m = Metrics(["orders.fifo"])
    get = m.registry.get_sample_value
    for kind in ("connection", "failover", "timeout", "statement_timeout", "constraint"):
        assert get("sqs2pg_db_errors_total", {"queue": "orders.fifo", "kind": kind}) == 0.0, kind
    for op in ("receive_message", "delete_message_batch", "change_message_visibility_batch"):
        for kind in ("sqs_unavailable", "sqs_throttled"):
            assert get("sqs2pg_sqs_errors_total", {"queue": "orders.fifo", "operation": op, "kind": kind}) == 0.0


def test_the_kinds_created_at_zero_are_the_kinds_a_database_failure_is_counted_under() -> None:
    import asyncpg

    for exc in (ConnectionResetError("reset"), TimeoutError(), asyncpg.exceptions.AdminShutdownError("x")):
        assert classify(exc).kind in DATABASE_ERROR_KINDS, exc
