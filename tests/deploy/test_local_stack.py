"""The local stack (docker/compose.yaml), its Prometheus configuration and alert rules, and the Grafana
dashboard: read statically (no Docker engine needed).

The alert rules are checked for shape here; whether their metric names match what a live /metrics serves
is a test of its own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..support.promql import ALERTS, PROMETHEUS_BUILT_INS, alert_rules, metric_names

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"

SERVICES = {"postgres", "sqs", "migrate", "sqs2pg", "prometheus", "grafana"}


def _only_sqs2pg_metrics(expr: str, allow: set[str] = frozenset()) -> set[str]:  # type: ignore[assignment]
    return {m for m in metric_names(expr) if not m.startswith("sqs2pg_") and m not in allow}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


# --- compose -----------------------------------------------------------------------------------------------------


def test_compose_has_the_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= SERVICES, SERVICES - set(compose["services"])


def test_every_image_is_pinned_and_fully_named_and_ours_is_built_once(compose: dict[str, Any]) -> None:
    built = [name for name, svc in compose["services"].items() if "build" in svc]
    assert built == ["sqs2pg"], built
    for name, svc in compose["services"].items():
        image = svc.get("image")
        assert image, f"{name}: no image"
        # podman refuses short names; docker accepts the full ones too
        assert image.split("/")[0] in ("docker.io", "localhost"), f"{name}: {image} is not fully qualified"
        if image == "localhost/sqs2pg:local":
            if "build" in svc:
                assert (
                    COMPOSE.parent / svc["build"]["context"] / svc["build"]["dockerfile"]
                ).resolve() == ROOT / "Dockerfile"
            else:
                assert svc.get("pull_policy") == "never", f"{name}: uses the image sqs2pg builds, must not pull it"
            continue
        assert "@sha256:" in image or re.search(r":[^/:]+$", image), f"{name}: {image} has no tag"
        tag = image.rsplit(":", 1)[1]
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"


def test_sqs2pg_starts_after_migrations_and_queues_and_is_locked_down(compose: dict[str, Any]) -> None:
    s = compose["services"]
    assert s["migrate"]["command"] == ["migrate"]
    deps = s["sqs2pg"]["depends_on"]
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert deps["sqs"]["condition"] == "service_healthy"
    assert deps["postgres"]["condition"] == "service_healthy"
    for name in ("sqs2pg", "migrate"):
        assert s[name]["read_only"] is True, name
        assert s[name]["cap_drop"] == ["ALL"] and "no-new-privileges:true" in s[name]["security_opt"], name
    hc = s["sqs2pg"]["healthcheck"]["test"]
    assert hc[0] == "CMD" and "/healthz" in " ".join(hc)
    # in-flight work gets the grace period at a stop: Compose must wait longer than that before SIGKILL
    env = s["sqs2pg"]["environment"]
    assert int(s["sqs2pg"]["stop_grace_period"].rstrip("s")) > float(env["SQS2PG_SHUTDOWN_GRACE_S"]) + 2
    assert env["SQS_QUEUE_URLS"].endswith("/orders.fifo")
    assert env["AWS_ENDPOINT_URL_SQS"].startswith("http://sqs:")
    assert not [k for k in env if k.startswith("SQS2PG_") and not re.fullmatch(r"SQS2PG_[A-Z0-9_]+", k)]


def test_queues_are_created_fifo_with_a_fifo_dlq(compose: dict[str, Any]) -> None:
    """The emulator is sqs2pg's own local SQS (the same file `sqs2pg local-sqs` runs), mounted into moto's image, and
    it makes orders.fifo and its dead-letter queue; the service starts only once the queue answers."""
    sqs = compose["services"]["sqs"]
    mount = next(v for v in sqs["volumes"] if v.endswith(":/moto/local.py:ro"))
    assert (COMPOSE.parent / mount.split(":")[0]).resolve() == ROOT / "service" / "sqs" / "local.py"
    entry = sqs["entrypoint"]
    assert entry[:2] == ["python", "/moto/local.py"] and entry[entry.index("--queue") + 1] == "orders.fifo"
    assert entry[entry.index("--max-receive-count") + 1] == "25"
    assert "orders.fifo" in " ".join(sqs["healthcheck"]["test"])
    # the file runs in moto's image, where sqs2pg is not installed: it imports nothing of sqs2pg
    assert "from sqs2pg" not in (ROOT / "service" / "sqs" / "local.py").read_text()
    assert "from ." not in (ROOT / "service" / "sqs" / "local.py").read_text()


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"


# --- Prometheus --------------------------------------------------------------------------------------------------


def test_prometheus_scrapes_sqs2pg_and_loads_the_rules(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]  # beside the config, inside the container and out
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "sqs2pg"]
    assert job["static_configs"][0]["targets"] == ["sqs2pg:8080"]
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes


def test_alert_rules_are_valid_rule_files() -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    names = set()
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
            assert rule["alert"] not in names
            names.add(rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].count("(") == rule["expr"].count(")")
            assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in ("critical", "warning", "info")
            assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 40


def test_alert_rules_cover_the_issue() -> None:
    exprs = {r["alert"]: r["expr"] for r in alert_rules()}
    joined = "\n".join(exprs.values())
    assert any("sqs2pg_dead_letter_messages" in e and "> 0" in e for e in exprs.values())
    assert any("histogram_quantile(0.99" in e and "sqs2pg_message_age_seconds_bucket" in e for e in exprs.values())
    assert any('outcome="committed"' in e and 'state="visible"' in e for e in exprs.values())
    for needle in (
        "sqs2pg_db_errors_total",
        "sqs2pg_sqs_errors_total",
        'outcome="dead_lettered"',
        "sqs2pg_circuit_open",
        "sqs2pg_pollers_up",
        "up{",
    ):
        assert needle in joined, needle


def test_every_alert_links_its_runbook_paragraph() -> None:
    headings = re.findall(r"^## (\S+)$", (ROOT / "docs" / "runbooks.md").read_text(), re.MULTILINE)
    for rule in alert_rules():
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks.md#{rule['alert'].lower()}", rule["alert"]
        assert rule["alert"] in headings, f"docs/runbooks.md has no paragraph for {rule['alert']}"
    assert sorted(headings) == sorted(r["alert"] for r in alert_rules()), "a runbook for an alert that is gone"


def test_every_alert_has_promtool_tests_firing_and_not_firing() -> None:
    """tests/prometheus/alerts_test.yml (run by promtool in scripts/check-prometheus.sh) checks each alert at
    least once where it fires and once where it does not."""
    doc = yaml.safe_load((ROOT / "tests" / "prometheus" / "alerts_test.yml").read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in doc["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested not firing"


def test_alert_rules_use_sqs2pg_metrics_and_only_the_up_builtin() -> None:
    for rule in alert_rules():
        assert not _only_sqs2pg_metrics(rule["expr"], PROMETHEUS_BUILT_INS), (rule["alert"], metric_names(rule["expr"]))


# --- Grafana -----------------------------------------------------------------------------------------------------


def test_grafana_is_provisioned(compose: dict[str, Any]) -> None:
    ds = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    dashboards = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "dashboards" / "sqs2pg.yml").read_text())
    (provider,) = dashboards["providers"]
    path = provider["options"]["path"]
    assert any(v.endswith(f":{path}:ro") for v in compose["services"]["grafana"]["volumes"])


def test_dashboard_parses_and_queries_only_sqs2pg_metrics() -> None:
    dash = json.loads((DOCKER / "grafana" / "dashboards" / "sqs2pg.json").read_text())
    ds = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    assert dash["uid"] and dash["title"]
    exprs = []
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == uid
        for target in panel["targets"]:
            exprs.append(target["expr"])
            assert not _only_sqs2pg_metrics(target["expr"]), (panel["title"], metric_names(target["expr"]))
    for var in dash["templating"]["list"]:
        assert re.fullmatch(r"label_values\(sqs2pg_\w+, ?\w+\)", var["definition"])
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    joined = "\n".join(exprs)
    # throughput by outcome, end-to-end age p50/p99, in flight, retries, DLQ moves and depth, database
    # errors, queue depth, circuit open
    for needle in (
        "sum by (outcome) (rate(sqs2pg_messages_total",
        "histogram_quantile(0.5, sum by (le) (rate(sqs2pg_message_age_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(sqs2pg_message_age_seconds_bucket",
        "sqs2pg_in_flight_messages",
        'outcome="retried"',
        'outcome="dead_lettered"',
        "sqs2pg_dead_letter_messages",
        "sqs2pg_db_errors_total",
        "sqs2pg_queue_messages",
        "sqs2pg_circuit_open",
    ):
        assert needle in joined, needle
