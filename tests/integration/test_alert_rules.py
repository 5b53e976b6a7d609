"""The shipped alert rules and dashboard ask only for metrics a running sqs2pg really exports.

The names are read from a live service's /metrics (not from a list kept beside the rules), so renaming a
metric without updating docker/prometheus/alerts.yml or the Grafana dashboard fails here.
"""

from __future__ import annotations

import re

import pytest

from ..support.helpers import Queues, make_settings, running, scrape_metrics, wait_until
from ..support.helpers import metric as sample
from ..support.promql import PROMETHEUS_BUILT_INS, alert_rules, dashboard_queries, missing_series, selectors

pytestmark = pytest.mark.integration

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "summary": ("_sum", "_count", "_created", ""),
}


def exported(metrics_text: str) -> dict[str, set[str]]:
    """Every sample name on /metrics with the label names it carries. A labelled family with no series yet
    (an error counter on a healthy service) shows only its TYPE line: its sample names count as exported."""
    out: dict[str, set[str]] = {}
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            for suffix in _SUFFIXES.get(kind, ("",)):
                out.setdefault((family.removesuffix("_total") if kind == "counter" else family) + suffix, set())
        elif line and not line.startswith("#"):
            m = re.match(r"([A-Za-z_:][\w:]*)(\{(.*)\})?\s", line)
            assert m, line
            out.setdefault(m.group(1), set()).update(re.findall(r'(\w+)="', m.group(3) or ""))
    return out


async def test_alert_rules_and_dashboard_use_only_exported_metrics(database_url, queues: Queues) -> None:
    await queues.send({"seq": 0}, "g", "g-0")  # one message through, so the histograms have samples
    settings = make_settings(database_url, [queues.url], depth_sample_interval_s="0.2")
    async with running(settings) as app:
        # until the message was committed (the histograms have samples) and the depths were sampled once
        await wait_until(lambda: _sampled(app), timeout_s=30)
        text = await scrape_metrics(app)
    names = exported(text)
    rules = [(r["alert"], r["expr"]) for r in alert_rules()]
    panels = dashboard_queries()
    assert len(rules) >= 4 and len(panels) >= 6, "the rules file or the dashboard lost its content"
    problems = []
    for where, expr in [(f"alert {n}", e) for n, e in rules] + [(f"panel {t!r}", e) for t, e in panels]:
        for name, labels in selectors(expr):
            if name in PROMETHEUS_BUILT_INS:
                continue
            if name not in names:
                problems.append(f"{where}: {name} is not exported")
            elif names[name] and (missing := labels - names[name] - {"job", "instance"}):
                problems.append(f"{where}: {name} has no label(s) {sorted(missing)}")
    assert not problems, "\n".join(problems)
    # The rules the issue asks for are there: DLQ not empty, message age, no commits while waiting, errors.
    exprs = " ".join(e for _, e in rules)
    for metric in (
        "sqs2pg_dead_letter_messages",
        "sqs2pg_message_age_seconds_bucket",
        "sqs2pg_queue_messages",
        "sqs2pg_db_errors_total",
    ):
        assert metric in exprs, metric


async def test_a_freshly_started_service_already_has_every_series_the_alerts_and_dashboard_read(
    database_url, queues: Queues
) -> None:
    """No message sent, nothing failed: each selector of alerts.yml and the dashboard (with its label matchers,
    e.g. outcome="dead_lettered", state="visible") already selects a series, so increase() sees the first
    error and no panel says "No data". The DLQ holds one message: the gauge says so from the start."""
    await queues.client.send_message(
        QueueUrl=queues.dlq_url, MessageBody="{}", MessageGroupId="g", MessageDeduplicationId="dead-0"
    )
    async with running(make_settings(database_url, [queues.url])) as app:
        text = await scrape_metrics(app)
        assert missing_series(text) == []
        assert sample(app, "sqs2pg_pollers_up", queue=queues.name) == 1
        assert sample(app, "sqs2pg_dead_letter_messages", queue=queues.name) == 1


async def _sampled(app) -> bool:  # type: ignore[no-untyped-def]
    text = await scrape_metrics(app)
    return "sqs2pg_message_age_seconds_count" in text and "sqs2pg_dead_letter_messages{" in text
