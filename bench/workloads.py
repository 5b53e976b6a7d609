"""What one benchmark run measures. Each function is one measurement and returns its figures."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from tests.support.checks import exactly_once
from tests.support.queues import create_fifo_queue

from .servers import ROOT, free_port, http_ok, wait_for_port

PAYLOAD = "x" * 120  # bodies of about 180 bytes: a typical small write


@dataclass(frozen=True)
class Queue:
    url: str
    dlq_url: str


async def make_queue(sqs: Any, name: str) -> Queue:
    url, dlq_url = await create_fifo_queue(sqs, name, max_receive_count=25)
    return Queue(url, dlq_url)


async def drop_queue(sqs: Any, q: Queue) -> None:
    for url in (q.url, q.dlq_url):
        await sqs.delete_queue(QueueUrl=url)


def _entries(indices: list[int], groups: int, tag: str) -> list[dict[str, Any]]:
    """One SendMessageBatch's entries (at most 10): message i goes to group i % groups as its (i // groups)th."""
    return [
        {
            "Id": str(k),
            "MessageBody": json.dumps({"group": i % groups, "seq": i // groups, "payload": PAYLOAD}),
            "MessageGroupId": f"g{i % groups}",
            "MessageDeduplicationId": f"{tag}-{i}",
        }
        for k, i in enumerate(indices)
    ]


async def fill(sqs: Any, q: Queue, n: int, groups: int, tag: str, senders: int = 8) -> float:
    """Send n messages over `groups` groups (message i goes to group i % groups, in order within its group).
    Each sender owns a disjoint set of groups, so concurrent sends cannot reorder a group. Returns msgs/s."""
    senders = max(1, min(senders, groups))

    async def send(j: int) -> None:
        mine = [i for i in range(n) if (i % groups) % senders == j]
        for k in range(0, len(mine), 10):
            r = await sqs.send_message_batch(QueueUrl=q.url, Entries=_entries(mine[k : k + 10], groups, tag))
            if r.get("Failed"):
                raise RuntimeError(f"send failed: {r['Failed'][:1]}")

    t0 = time.perf_counter()
    await asyncio.gather(*(send(j) for j in range(senders)))
    return n / (time.perf_counter() - t0)


async def queue_ceiling(sqs: Any, q: Queue, n: int, pollers: int = 8) -> float:
    """The queue alone: several pollers, ReceiveMessage of 10 then DeleteMessageBatch, no database."""
    done = 0
    finished = asyncio.Event()
    t0 = time.perf_counter()
    t_end = t0

    async def poll() -> None:
        nonlocal done, t_end
        while not finished.is_set():
            r = await sqs.receive_message(
                QueueUrl=q.url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                VisibilityTimeout=30,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            msgs = r.get("Messages", [])
            if not msgs:
                continue
            await sqs.delete_message_batch(
                QueueUrl=q.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)],
            )
            done += len(msgs)
            if done >= n:
                t_end = time.perf_counter()
                finished.set()

    await asyncio.gather(*(poll() for _ in range(pollers)))
    return done / (t_end - t0)


async def db_ceiling(db_url: str, n: int, connections: int = 16) -> float:
    """The database alone: one INSERT (committed on its own) per message over a pool, no queue."""
    pool = await asyncpg.create_pool(db_url, min_size=connections, max_size=connections)
    sql = (
        "INSERT INTO bench_ceiling (idempotency_key, queue_name, message_group_id, message_id, body, sent_at) "
        "VALUES ($1, 'ceiling', $2, $1, $3::jsonb, now())"
    )
    next_i = 0

    async def work() -> None:
        nonlocal next_i
        async with pool.acquire() as conn:
            while next_i < n:
                i = next_i
                next_i += 1
                await conn.execute(sql, f"c-{i}", f"g{i % 100}", json.dumps({"seq": i, "payload": PAYLOAD}))

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(work() for _ in range(connections)))
        rate = n / (time.perf_counter() - t0)
        await pool.execute("TRUNCATE bench_ceiling")
    finally:
        await pool.close()
    return rate


async def naive(sqs: Any, q: Queue, db_url: str, n: int) -> float:
    """What one writes by hand first: one poller, one message at a time: receive, INSERT + COMMIT, delete."""
    conn = await asyncpg.connect(db_url)
    sql = (
        "INSERT INTO bench_naive (idempotency_key, queue_name, message_group_id, message_id, body, sent_at) "
        "VALUES ($1, 'naive', $2, $3, $4::jsonb, now())"
    )
    done = 0
    try:
        t0 = time.perf_counter()
        while done < n:
            r = await sqs.receive_message(
                QueueUrl=q.url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=1,
                VisibilityTimeout=30,
                MessageSystemAttributeNames=["All"],
            )
            for m in r.get("Messages", []):
                a = m["Attributes"]
                await conn.execute(sql, a["MessageDeduplicationId"], a["MessageGroupId"], m["MessageId"], m["Body"])
                await sqs.delete_message(QueueUrl=q.url, ReceiptHandle=m["ReceiptHandle"])
                done += 1
        rate = done / (time.perf_counter() - t0)
        await conn.execute("TRUNCATE bench_naive")
    finally:
        await conn.close()
    return rate


async def peer(
    sqs: Any, endpoint_env: dict[str, str], db_url: str, q: Queue, n: int, groups: int, tag: str, log: Path
) -> float:
    """aws-sqs-consumer 0.0.15 (bench/peer.py) on a backlog of n, in its own process: msgs/s, first to last commit."""
    await fill(sqs, q, n, groups, tag)
    conn = await asyncpg.connect(db_url)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SQS2PG_")}, **endpoint_env}
    try:
        await conn.execute("TRUNCATE bench_peer, bench_peer_keys")
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [
                    str(ROOT / ".venv" / "bin" / "python"),
                    "-m",
                    "bench.peer",
                    "--queue-url",
                    q.url,
                    "--database-url",
                    db_url,
                    "--messages",
                    str(n),
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + max(120.0, n / 50)
                while await conn.fetchval("SELECT count(*) FROM bench_peer") < n:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the peer consumer stopped or stalled (see the log)")
                    await asyncio.sleep(0.05)
            finally:
                proc.terminate()
                proc.wait(30)
        span = await conn.fetchval("SELECT extract(epoch FROM max(committed_at) - min(committed_at)) FROM bench_peer")
        await conn.execute("TRUNCATE bench_peer, bench_peer_keys")
        return (n - 1) / float(span)
    finally:
        await conn.close()


# --- sqs2pg itself, as a separate process started the way users start it --------------------------------


class Service:
    """`sqs2pg run` in its own process, with only environment variables, as in a container."""

    stopping: list[Service] = []  # stopped and not yet reaped: a stop waits out a long poll (up to 20 s)

    def __init__(
        self,
        endpoint_env: dict[str, str],
        db_url: str,
        q: Queue,
        log: Path,
        extra_env: dict[str, str],
        profile: Path | None = None,
    ) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SQS2PG_")}
        env.update(endpoint_env, DATABASE_URL=db_url, SQS_QUEUE_URLS=q.url, HTTP_PORT=str(self.port), **extra_env)
        self._log = log.open("ab")
        cmd = [str(ROOT / ".venv" / "bin" / "sqs2pg"), "run"]
        self.profiled = profile is not None
        if profile is not None:  # py-spy samples the service from outside; --subprocesses is not needed
            cmd = [
                str(ROOT / ".venv" / "bin" / "py-spy"),
                "record",
                "--format",
                "raw",
                "--rate",
                "200",
                "-o",
                str(profile),
                "--",
                *cmd,
            ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def ready(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.port}/readyz")

    async def wait_ready(self, timeout_s: float = 30) -> None:
        wait_for_port(self.port, self.proc, timeout_s)
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(self.ready):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("sqs2pg did not become ready")
            await asyncio.sleep(0.1)

    @property
    def service_pid(self) -> int:
        pid = self.proc.pid
        if self.profiled:  # the service is py-spy's child; py-spy writes its file once the child exits
            pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
        return pid

    def sqs_requests(self) -> dict[str, float]:
        """SQS calls made so far, by operation, from the service's own /metrics."""
        out: dict[str, float] = {}
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("sqs2pg_sqs_requests_total{"):
                    op = line.split('operation="', 1)[1].split('"', 1)[0]
                    out[op] = out.get(op, 0.0) + float(line.rsplit(" ", 1)[1])
        return out

    def cpu_s(self) -> float:
        """User plus system CPU seconds the service has used so far."""
        fields = Path(f"/proc/{self.service_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        """Peak resident set size so far (VmHWM, the kernel's high-water mark), in MiB."""
        for line in Path(f"/proc/{self.service_pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def stop(self) -> None:
        """SIGTERM; the exit code is collected by reap_all() at the end of the benchmark."""
        os.kill(self.service_pid, signal.SIGTERM)
        Service.stopping.append(self)

    @classmethod
    def reap_all(cls) -> list[int]:
        codes = [s.proc.wait(60) for s in cls.stopping]
        for s in cls.stopping:
            s._log.close()
        cls.stopping.clear()
        return codes


async def _wait_for_rows(conn: asyncpg.Connection, n: int, service: Service, timeout_s: float) -> float:
    """Wait until n rows are committed; returns the service's CPU seconds spent since the first commit."""
    deadline = time.monotonic() + timeout_s
    cpu_at_first: float | None = None
    while (count := await conn.fetchval("SELECT count(*) FROM events")) < n:
        if count and cpu_at_first is None:
            cpu_at_first = service.cpu_s()
        if service.proc.poll() is not None:
            raise RuntimeError("sqs2pg exited during the run (see the log)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"sqs2pg did not commit {n} messages within {timeout_s} s")
        await asyncio.sleep(0.05)
    return service.cpu_s() - (cpu_at_first or 0.0)


async def check_exactly_once(conn: asyncpg.Connection, n: int) -> dict[str, int]:
    """Lost, duplicated and out-of-order messages in table events (all three must be 0). The bench's keys are
    "TAG-i" for i in range(n): what was sent is known from any one of them."""
    rows = await conn.fetch(
        "SELECT idempotency_key AS k, message_group_id AS g, (body->>'seq')::int AS seq FROM events ORDER BY id"
    )
    tag = rows[0]["k"].rsplit("-", 1)[0] if rows else ""
    check = exactly_once(((r["k"], r["g"], r["seq"]) for r in rows), {f"{tag}-{i}" for i in range(n)})
    return {"lost": check.lost, "duplicates": check.duplicates, "order_violations": check.order_violations}


async def reset_tables(conn: asyncpg.Connection, keep_records: bool = False) -> None:
    await conn.execute("TRUNCATE events" if keep_records else "TRUNCATE events, sqs2pg_idempotency")


def _stop_flood(flooding: subprocess.Popen[bytes] | None) -> dict[str, int]:
    """Stop the flood and read what it counted."""
    if flooding is None:
        return {}
    flooding.send_signal(signal.SIGTERM)
    out, _ = flooding.communicate(timeout=60)
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def sqs2pg_backlog(
    sqs: Any,
    endpoint_env: dict[str, str],
    db_url: str,
    q: Queue,
    n: int,
    groups: int,
    tag: str,
    log: Path,
    extra_env: dict[str, str],
    profile: Path | None = None,
    flood: int = 0,
    service_db_url: str | None = None,
    keep_records: bool = False,
    started: asyncio.Event | None = None,
) -> dict[str, Any]:
    """A backlog of n messages waiting, then sqs2pg started: throughput (first to last commit) and peak RSS.
    ``flood``: that many HTTP clients hammer its /metrics from the moment its port answers (bench/flood.py).
    ``service_db_url``: the service's DATABASE_URL, when it is not db_url (a pooler in front of it).
    ``keep_records``: the idempotency records already there stay (bench/scale.py); ``started`` is set as the
    service is started."""
    await fill(sqs, q, n, groups, tag)
    conn = await asyncpg.connect(db_url)
    flooding: subprocess.Popen[bytes] | None = None
    try:
        await reset_tables(conn, keep_records)
        t0 = time.perf_counter()
        if started is not None:
            started.set()
        service = Service(endpoint_env, service_db_url or db_url, q, log, extra_env, profile)
        try:
            if flood:
                await asyncio.to_thread(wait_for_port, service.port, service.proc, 30)
                url = f"http://127.0.0.1:{service.port}/metrics"
                flooding = subprocess.Popen(
                    [sys.executable, "-m", "bench.flood", url, str(flood)], cwd=ROOT, stdout=subprocess.PIPE
                )
            cpu = await _wait_for_rows(conn, n, service, timeout_s=max(120.0, n / 50))
            wall = time.perf_counter() - t0
            flood_counts, flooding = _stop_flood(flooding), None  # (a flood holds every connection /metrics takes)
            rss = service.peak_rss_mb()
            calls = service.sqs_requests()
        finally:
            _stop_flood(flooding)
            service.stop()
        span = await conn.fetchval("SELECT extract(epoch FROM max(committed_at) - min(committed_at)) FROM events")
        result = {
            "msgs_per_s": (n - 1) / float(span),
            "wall_s": wall,
            "peak_rss_mb": rss,
            "cpu_us_per_msg": 1e6 * cpu / n,
            "cpu_busy": cpu / float(span),
            "msgs_per_receive": n / calls.get("receive_message", 1),
            "msgs_per_delete": n / calls.get("delete_message_batch", 1),
            **({"flood_answered_per_s": flood_counts["answered"] / wall} if flood else {}),
            **await check_exactly_once(conn, n),
        }
        await reset_tables(conn, keep_records)
        return result
    finally:
        await conn.close()


async def sqs2pg_latency(
    sqs: Any,
    endpoint_env: dict[str, str],
    db_url: str,
    q: Queue,
    rate: float,
    duration_s: float,
    warmup_s: float,
    groups: int,
    tag: str,
    log: Path,
    extra_env: dict[str, str],
) -> dict[str, Any]:
    """sqs2pg running and idle, then a paced load: end-to-end latency from SentTimestamp to the commit."""
    conn = await asyncpg.connect(db_url)
    try:
        await reset_tables(conn)
        service = Service(endpoint_env, db_url, q, log, extra_env)
        try:
            await service.wait_ready()
            sent, measured_from, achieved = await _paced_send(sqs, q, rate, duration_s, warmup_s, groups, tag)
            await _wait_for_rows(conn, sent, service, timeout_s=120)
            rss = service.peak_rss_mb()
        finally:
            service.stop()
        row = await conn.fetchrow(
            """SELECT count(*) AS n,
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY lat) AS p50,
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY lat) AS p99,
                      max(lat) AS max
               FROM (SELECT extract(epoch FROM committed_at - sent_at) * 1000 AS lat FROM events
                     WHERE sent_at >= to_timestamp($1)) t""",
            measured_from,
        )
        result = {
            "p50_ms": float(row["p50"]),
            "p99_ms": float(row["p99"]),
            "max_ms": float(row["max"]),
            "measured_messages": int(row["n"]),
            "achieved_msgs_per_s": achieved,
            "peak_rss_mb": rss,
            **await check_exactly_once(conn, sent),
        }
        await reset_tables(conn)
        return result
    finally:
        await conn.close()


async def _paced_send(
    sqs: Any, q: Queue, rate: float, duration_s: float, warmup_s: float, groups: int, tag: str, tick_s: float = 0.01
) -> tuple[int, float, float]:
    """Send at `rate` msgs/s for warmup_s + duration_s: every tick, the messages due, in one SendMessageBatch
    (at 500/s: 5 every 10 ms). Returns (sent, wall-clock start of the measured part, achieved rate)."""
    loop = asyncio.get_running_loop()
    total = int(rate * (warmup_s + duration_s))
    in_flight: set[asyncio.Task[Any]] = set()
    start = loop.time()
    wall_start = time.time()
    i = tick = 0
    while i < total:
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * tick_s - loop.time()))
        due = min(total, int((loop.time() - start) * rate))
        while i < due:
            entries = _entries(list(range(i, min(due, i + 10))), groups, tag)
            # a group's messages are many ticks apart (groups > messages per tick), so concurrent sends
            # cannot reorder a group
            task = asyncio.create_task(sqs.send_message_batch(QueueUrl=q.url, Entries=entries))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            i += len(entries)
    await asyncio.gather(*in_flight)
    elapsed = loop.time() - start
    return total, wall_start + warmup_s, total / elapsed
