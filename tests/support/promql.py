"""The shipped alert rules and dashboard, and the series their PromQL selects: one reader for every test."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "docker" / "prometheus" / "alerts.yml"
DASHBOARDS = ROOT / "docker" / "grafana" / "dashboards"
# Series Prometheus makes itself for every scrape target, not the service: allowed by name, on purpose.
PROMETHEUS_BUILT_INS = {"up"}
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset"}
_KEYWORDS |= {"bool", "inf", "nan"}


Matcher = tuple[str, str, str]  # (label, operator: = != =~ !~, value)


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched on) for each series selector in a PromQL expression (Grafana's
    variables allowed)."""
    return [(name, {label for label, _, _ in matchers}) for name, matchers in selector_matchers(expr)]


def selector_matchers(expr: str) -> list[tuple[str, list[Matcher]]]:
    """(metric name, its label matchers) for each series selector in a PromQL expression. A Grafana variable
    inside a matcher's value (``$queue``) becomes ``.*``: "All", as the dashboard opens."""
    literals: list[str] = []

    def keep(m: re.Match[str]) -> str:  # string literals can hold anything: set them aside
        literals.append(m.group(0)[1:-1].replace('\\"', '"'))
        return f'"{len(literals) - 1}"'

    expr = re.sub(r'"(?:[^"\\]|\\.)*"', keep, expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery durations
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables outside strings
    found = []
    for m in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?(\s*\()?", expr):
        name, braces, call = m.group(1), m.group(2) or "", m.group(3)
        if call or name.lower() in _KEYWORDS:
            continue  # a function (rate, histogram_quantile, ...) or an operator keyword
        matchers = [
            (label, op, re.sub(r"\$\{?\w+\}?", ".*", literals[int(i)]))
            for label, op, i in re.findall(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"(\d+)"', braces)
        ]
        found.append((name, matchers))
    return found


def matches(labels: dict[str, str], matchers: list[Matcher]) -> bool:
    """Whether a series with ``labels`` is selected by ``matchers`` (PromQL's rules: regexes anchored, an
    absent label is the empty string)."""
    for label, op, value in matchers:
        have = labels.get(label, "")
        hit = re.fullmatch(value, have) is not None if op in ("=~", "!~") else have == value
        if hit != (op in ("=", "=~")):
            return False
    return True


def used_selectors() -> list[tuple[str, str, list[Matcher]]]:
    """(where, metric name, matchers) for every series selector of the shipped alert rules and dashboards."""
    exprs = [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()]
    exprs += [(f"panel {title!r}", e) for title, e in dashboard_queries()]
    exprs += [(f"variable ${name}", e) for name, e in dashboard_variables()]
    return [(where, name, m) for where, e in exprs for name, m in selector_matchers(e)]


def missing_series(metrics_text: str) -> list[str]:
    """Each selector of the shipped rules and dashboards that selects no series of ``metrics_text`` (a
    /metrics page), as "where: selector". Prometheus's own series (``up``) are not on /metrics: skipped."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = [(s.name, s.labels) for f in text_string_to_metric_families(metrics_text) for s in f.samples]
    problems = []
    for where, name, matchers in used_selectors():
        if name in PROMETHEUS_BUILT_INS:
            continue
        if not any(n == name and matches(labels, matchers) for n, labels in samples):
            shown = ", ".join(f'{label}{op}"{value}"' for label, op, value in matchers)
            problems.append(f"{where}: no series {name}{{{shown}}}")
    return problems


def metric_names(expr: str) -> set[str]:
    return {name for name, _ in selectors(expr)}


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yml, as written."""
    doc = yaml.safe_load(ALERTS.read_text())
    assert set(doc) == {"groups"}, "alerts.yml holds only rule groups"
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) for every query of every shipped Grafana dashboard."""
    found: list[tuple[str, str]] = []

    def walk(node: object, title: str) -> None:
        if isinstance(node, dict):
            title = str(node.get("title", title))
            if isinstance(node.get("expr"), str):
                found.append((title, node["expr"]))
            for v in node.values():
                walk(v, title)
        elif isinstance(node, list):
            for v in node:
                walk(v, title)

    for path in sorted(DASHBOARDS.glob("*.json")):
        walk(json.loads(path.read_text()), path.name)
    return found


def dashboard_variables() -> list[tuple[str, str]]:
    """(name, selector) for every query variable of the shipped dashboards: ``label_values(m, l)`` lists the
    values of label l on series m, so it needs a series of m that has l."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for var in json.loads(path.read_text()).get("templating", {}).get("list", []):
            query = var.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            if not (var.get("type") == "query" and isinstance(query, str)):
                continue
            if m := re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", query):
                metric, label = m.group(1), m.group(2)
                found.append((var["name"], f'{metric}{{{label}=~".+"}}' if "{" not in metric else metric))
    return found
