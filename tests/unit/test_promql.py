"""The PromQL reading the alert-rule tests rely on (tests/support/promql.py), pinned without a server."""

from __future__ import annotations

from ..support.promql import selectors


def test_the_expression_parser_sees_names_and_skips_functions_and_labels() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, queue) (rate(a_bucket{queue=~"x|y"}[5m]))) > 1 and on () b == 0'
    assert selectors(expr) == [("a_bucket", {"queue"}), ("b", set())]
    grafana = 'sum by (queue, le) (rate(sqs2pg_message_age_seconds_bucket{queue=~"$queue"}[$__rate_interval]))'
    assert selectors(grafana) == [("sqs2pg_message_age_seconds_bucket", {"queue"})]
