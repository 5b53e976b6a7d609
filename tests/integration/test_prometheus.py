"""The shipped alert rules and dashboard, evaluated by a real Prometheus scraping a real sqs2pg.

Prometheus (Debian's `prometheus` package, run directly on a free loopback port, scraping every second) loads
docker/prometheus/alerts.yml as shipped. The test dead-letters a poison message, then stops PostgreSQL (a
private cluster of its own, never the shared server) and sends more, and asserts through Prometheus's HTTP
API that the alerts meant for that reached pending or firing, and that every query of the Grafana dashboard
returns data. promtool's unit tests (tests/prometheus/alerts_test.yml) cover each rule's timing; this proves
the rules and the service fit together.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from sqs2pg.db import migrate

from ..support.helpers import Queues, make_settings, metric, running, wait_until
from ..support.pgcluster import Clusters, bindir
from ..support.promql import ALERTS, dashboard_queries, dashboard_variables
from ..support.servers import free_port, start_prometheus, wait_for_port

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.one_sqs,  # what Prometheus reads of sqs2pg does not depend on the SQS server
    pytest.mark.skipif(
        PROMETHEUS is None, reason="no prometheus binary on the PATH (Debian: apt-get install prometheus)"
    ),
    pytest.mark.skipif(bindir() is None, reason="needs PostgreSQL server binaries (initdb, pg_ctl)"),
]
SCRAPE_S = 1


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:  # urllib's HTTPError (the 503 before it is ready) is an OSError
            return False

    def alert_states(self) -> dict[str, set[str]]:
        """alertname -> the states (pending, firing) its active alerts are in."""
        states: dict[str, set[str]] = {}
        for alert in self.get("/api/v1/alerts")["alerts"]:
            states.setdefault(alert["labels"]["alertname"], set()).add(alert["state"])
        return states

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/query", query=expr)["result"])


@pytest.fixture
def prometheus_for() -> Iterator[Any]:
    """start(metrics_port) -> a Prometheus scraping 127.0.0.1:metrics_port as job sqs2pg, with the shipped rules."""
    tmp = Path(tempfile.mkdtemp(prefix="sqs2pg-prom-"))
    procs: list[subprocess.Popen[bytes]] = []

    def start(metrics_port: int) -> Prometheus:
        config = {
            "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "sqs2pg", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        proc = start_prometheus(tmp / "prometheus.yml", port, tmp / "data", tmp / "prometheus.log")
        procs.append(proc)
        try:
            wait_for_port(port, proc)
        except RuntimeError:
            raise AssertionError(f"prometheus did not start:\n{(tmp / 'prometheus.log').read_text()[-3000:]}") from None
        prom = Prometheus(port)
        # The port opens before the storage is ready; until then every query is a 503.
        deadline = time.monotonic() + 30
        while not prom.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus not ready:\n{(tmp / 'prometheus.log').read_text()[-3000:]}")
            time.sleep(0.1)
        return prom

    try:
        yield start
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
async def private_database() -> AsyncIterator[tuple[Any, str]]:
    """(cluster, database URL): a PostgreSQL server of this test's own, migrated, that it may stop."""
    clusters = Clusters()
    try:
        pg = clusters.new("prometheus")
        await asyncio.to_thread(pg.init)
        await asyncio.to_thread(pg.start)
        admin = await asyncpg.connect(pg.url())
        await admin.execute("CREATE DATABASE sqs2pg")
        await admin.close()
        url = pg.url("sqs2pg")
        await asyncio.to_thread(migrate.upgrade, make_settings(url, ["http://x/1/q.fifo"]))
        yield pg, url
    finally:
        await asyncio.to_thread(clusters.close)


async def test_alerts_fire_and_every_dashboard_query_has_data_while_postgres_is_down(
    private_database: tuple[Any, str], queues: Queues, prometheus_for: Any
) -> None:
    started = time.monotonic()
    pg, url = private_database
    settings = make_settings(url, [queues.url], depth_sample_interval_s="1", db_connect_timeout_s="2")
    async with running(settings) as app:
        assert app.http_port is not None
        prom = await asyncio.to_thread(prometheus_for, app.http_port)
        q = queues.name

        async def scraped() -> bool:
            result = await asyncio.to_thread(prom.query, 'up{job="sqs2pg"} == 1')
            return len(result) == 1

        await wait_until(scraped, timeout_s=30)
        # One good message (the histograms get a sample) and a poison one (not JSON: dead-lettered at once).
        await queues.send({"seq": 0}, "good", "good-0")
        await queues.send("not json", "poison", "poison-0")
        await wait_until(lambda: _at_least(app, "sqs2pg_messages_total", q, outcome="dead_lettered"), timeout_s=30)

        async def alerts(*wanted: str) -> bool:
            states = await asyncio.to_thread(prom.alert_states)
            return all(states.get(name) for name in wanted)

        await wait_until(lambda: alerts("Sqs2pgMessagesDeadLettered", "Sqs2pgDeadLetterQueueNotEmpty"), timeout_s=30)

        # PostgreSQL goes away; what arrives now fails its transaction until the circuit opens.
        await asyncio.to_thread(pg.stop, "fast")
        for i in range(3):
            await queues.send({"seq": i}, f"late-{i}", f"late-{i}")
        await wait_until(lambda: _at_least(app, "sqs2pg_db_errors_total", q, total=True), timeout_s=30)
        await wait_until(lambda: alerts("Sqs2pgDatabaseErrors"), timeout_s=30)
        states = await asyncio.to_thread(prom.alert_states)
        assert states["Sqs2pgMessagesDeadLettered"] == {"firing"}, states  # for: 0m
        assert states["Sqs2pgDatabaseErrors"] <= {"pending", "firing"}, states
        # and nothing that is not true: the target is up, and pollers count as up from the start
        assert not {"Sqs2pgDown", "Sqs2pgMissing", "Sqs2pgPollersDown"} & set(states), states

        # Every dashboard query answers, as Grafana sends it with "All" queues selected.
        empty = []
        for title, expr in dashboard_queries():
            promql = expr.replace("$__rate_interval", "1m").replace("$queue", ".*")
            if not await asyncio.to_thread(prom.query, promql):
                empty.append(f"{title}: {promql}")
        for name, selector in dashboard_variables():
            if not await asyncio.to_thread(prom.query, selector):
                empty.append(f"${name}: {selector}")
        assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
    print(f"prometheus test: {time.monotonic() - started:.1f} s, alerts {sorted(states)}")


async def _at_least(app: Any, name: str, queue: str, total: bool = False, **labels: str) -> bool:
    if total:
        return any(
            s.value > 0
            for family in app.metrics.registry.collect()
            for s in family.samples
            if s.name == name and s.labels.get("queue") == queue
        )
    return metric(app, name, queue=queue, **labels) > 0
