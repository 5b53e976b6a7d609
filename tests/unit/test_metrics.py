"""Every error series exists from the start, at 0: Prometheus sees the first failure as an increase."""

from __future__ import annotations

from sqs2pg.consume.app import App
from sqs2pg.errors import DATABASE_ERROR_KINDS, classify
from sqs2pg.message import queue_name
from sqs2pg.observe.metrics import Metrics

from ..support.fakes import QUEUE_URL, FakeSqs, FakeStore, Stored
from ..support.helpers import make_settings, metric, running, scrape_metrics
from ..support.promql import missing_series


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


def test_every_series_of_a_queue_and_its_dead_letter_queue_exists_from_the_start() -> None:
    m = Metrics(["orders.fifo"])
    m.dead_letter_queue("orders-dlq.fifo")
    get = m.registry.get_sample_value
    q = {"queue": "orders.fifo"}
    for outcome in ("committed", "duplicate", "retried", "dead_lettered", "released"):
        assert get("sqs2pg_messages_total", {**q, "outcome": outcome}) == 0.0, outcome
    for histogram in ("sqs2pg_handle_duration_seconds", "sqs2pg_message_age_seconds"):
        assert get(f"{histogram}_count", q) == 0.0 and get(f"{histogram}_bucket", {**q, "le": "+Inf"}) == 0.0
    for op in ("get_queue_attributes", "get_queue_url", "receive_message"):
        assert get("sqs2pg_sqs_requests_total", {**q, "operation": op}) == 0.0, op
    for op in ("send_message", "get_queue_attributes"):  # copies sent to the DLQ, its depth samples
        labels = {"queue": "orders-dlq.fifo", "operation": op}
        assert get("sqs2pg_sqs_requests_total", labels) == 0.0, op
        assert get("sqs2pg_sqs_errors_total", {**labels, "kind": "sqs_unavailable"}) == 0.0, op
    # Gauges are not invented: no depth until the queue was sampled, no pollers_up until it was described.
    assert get("sqs2pg_dead_letter_messages", q) is None
    assert get("sqs2pg_pollers_up", q) is None


async def test_a_fresh_service_exports_every_series_the_alerts_and_the_dashboard_read() -> None:
    """The same check as tests/integration/test_alert_rules.py, on the in-memory fakes: with a backlog and a
    message in the DLQ, right after start and before anything was received, the gauges say so."""
    sqs, store = FakeSqs(), FakeStore()
    sqs.send_message('{"seq": 0}', "g", "g-0")
    sqs.dead.append(Stored("d0", "{}", "g", "d0", {}, 0))
    # Depth sampled only at start within the test (interval 1 h), and a receive that never returns: what
    # /metrics shows is the state at start, before the first poll returned.
    sqs.stall.add("receive")
    settings = make_settings("postgresql://fake@127.0.0.1:1/fake", [QUEUE_URL], depth_sample_interval_s="3600")
    async with running(App(settings, store=store, sqs=sqs)) as app:
        text = await scrape_metrics(app)
    assert missing_series(text) == []
    q = queue_name(QUEUE_URL)
    assert metric(app, "sqs2pg_pollers_up", queue=q) == 1
    assert metric(app, "sqs2pg_queue_messages", queue=q, state="visible") == 1
    assert metric(app, "sqs2pg_dead_letter_messages", queue=q) == 1
