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


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched on) for each series selector in a PromQL expression (Grafana's
    variables allowed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals can hold anything
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery durations
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables
    found = []
    for m in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?(\s*\()?", expr):
        name, matchers, call = m.group(1), m.group(2) or "", m.group(3)
        if call or name.lower() in _KEYWORDS:
            continue  # a function (rate, histogram_quantile, ...) or an operator keyword
        found.append((name, set(re.findall(r"([A-Za-z_]\w*)\s*[=!]~?", matchers))))
    return found


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
