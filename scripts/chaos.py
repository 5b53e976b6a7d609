"""Chaos soak: several sqs2pg processes on one queue while producers keep sending and faults come at random.

    .venv/bin/python -m scripts.chaos --minutes 10 [--sqs moto|fauxqs|both] [--processes 3] [--seed N]
        [--out DIR] [--report FILE] [--negative-control]

Producers send without pause over thousands of groups (a sequence number per group in each body; about one
message in 200 a poison one; about one in 400 with a body near 1 MiB). Every few seconds a fault is drawn
from those this machine can give: SIGKILL of a service process and its restart, a SIGTERM restart, a
process paused (SIGSTOP) past its visibility timeout and then resumed, PostgreSQL restarted (fast or
immediate), the primary killed and its synchronous replica promoted (once), a window of SQS trouble
through the fault proxy (5xx, throttling, dropped connections, lost responses, delays), and a few seconds in
which the handler fails about a third of the messages transiently (each is then tried again in place).

What it checks, from table ``applied`` (no unique key, so a second apply would show): nothing applied twice
and no order violation within a group, every few seconds while it runs; at the end, after the producers
stop and the queue drains, also nothing lost, every poison message dead-lettered with its reason and no
good one in the dead-letter queue. It prints a report (messages, faults of each kind, recovery times, the
invariants) and exits 1 on any violation. The drain ends once every good message is committed and the queue
is empty, or once the queue has stayed empty for DRAIN_EMPTY_S without that (what is missing then is lost).

What it leaves, so that a violation can be explained after the fact, in ``--out`` (default a fresh directory
under the system's temporary one, printed), one folder per emulator: ``faults.log`` (every fault with its
target and times, the recoveries and the running checks), ``service-N.log`` (each service process's output,
across its restarts), ``sent.jsonl`` (every message the producers sent: key, group, seq, kind, when),
``lost.txt`` (group, seq and key of each good message never committed, with its send time),
``duplicates.txt`` and ``report.json`` (this emulator's results). ``--negative-control`` deletes one committed
good row before the final check: that run must report exactly one message lost and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioboto3
import asyncpg

from tests.handlers import APPLIED_TABLE, CHAOS_FLAKY_TABLE
from tests.support.checks import exactly_once
from tests.support.helpers import migrate_by_cli, with_database
from tests.support.pgcluster import Cluster, Clusters, bindir, wait_accepting
from tests.support.queues import create_fifo_queue
from tests.support.servers import ROOT, fauxqs_installed, free_port, start_fauxqs, start_moto, wait_for_port
from tests.support.sqs_fault_proxy import FaultPlan, start_proxy

REGION = "us-east-1"
VISIBILITY_S = 10
BIG_BODY = 900_000  # near SQS's 1 MiB, leaving room for the producer's attributes
GROUPS = 2000
DRAIN_EMPTY_S = 30  # the drain gives up this long after the queue was last seen non-empty
DRAIN_MAX_S = 300


@dataclass
class Soak:
    sqs_name: str
    sqs_url: str
    proxy_url: str
    plan: FaultPlan
    writer: Cluster | None
    replica: Cluster | None
    database_url: str
    admin_db: asyncpg.Connection
    workdir: Path
    processes: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    log_offsets: dict[int, int] = field(default_factory=dict)  # where each process's current run starts in its log
    sent: list[str] = field(default_factory=list)  # good keys, in send order
    where: dict[str, tuple[str, int, float]] = field(default_factory=dict)  # key -> (group, seq, sent at)
    poison: set[str] = field(default_factory=set)
    faults: Counter[str] = field(default_factory=Counter)
    recoveries: dict[str, list[float]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        stamped = f"[{time.strftime('%H:%M:%S')}] {self.sqs_name}: {line}"
        self.log.append(stamped)
        print(stamped, flush=True)
        with open(self.workdir / "faults.log", "a") as f:
            f.write(stamped + "\n")

    def record_sent(self, entries: list[dict[str, Any]], kinds: list[str]) -> None:
        """Appends the batch to sent.jsonl once SQS accepted it."""
        now = time.time()
        with open(self.workdir / "sent.jsonl", "a") as f:
            for e, kind in zip(entries, kinds, strict=True):
                key, group = e["MessageDeduplicationId"], e["MessageGroupId"]
                seq = int(key.rsplit("-", 1)[1])
                self.where[key] = (group, seq, now)
                if kind == "poison":
                    self.poison.add(key)
                else:
                    self.sent.append(key)
                f.write(json.dumps({"key": key, "group": group, "seq": seq, "kind": kind, "sent_at": now}) + "\n")


# --- the service processes ------------------------------------------------------------------------------------


def start_service(soak: Soak, i: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": soak.database_url,
        "SQS_QUEUE_URLS": os.environ["CHAOS_QUEUE_URL"],
        "AWS_ENDPOINT_URL_SQS": soak.proxy_url,
        "HTTP_PORT": "0",
        "HANDLER": "tests.handlers:chaos_apply",
        "SQS2PG_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S),
        "SQS2PG_RECEIVE_WAIT_S": "2",
        "SQS2PG_RETRY_BASE_S": "1",
        "SQS2PG_RETRY_MAX_S": "4",
        "SQS2PG_SHUTDOWN_GRACE_S": "5",
        "SQS2PG_DB_CONNECT_TIMEOUT_S": "2",
        "SQS2PG_DEPTH_SAMPLE_INTERVAL_S": "0",
    }
    out = open(soak.workdir / f"service-{i}.log", "ab")  # noqa: SIM115 - the process owns it
    soak.log_offsets[i] = out.tell()
    return subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "sqs2pg", "run"], env=env, stdout=out, stderr=out, cwd=ROOT
    )


def log_tail(soak: Soak, i: int, lines: int = 15) -> str:
    """The last lines of a service's log, for a violation's text (CI keeps the printed report, not the traces)."""
    text = (soak.workdir / f"service-{i}.log").read_text(errors="replace").splitlines()[-lines:]
    return "; its log ends:\n    " + "\n    ".join(line[:400] for line in text)


def receiving(soak: Soak, i: int, timeout_s: float = 60) -> None:
    """Wait until service i's current process says "receiving" (or has exited). A SIGTERM before that, while Python
    is still importing, ends it by the signal's default action (exit -15): harmless, nothing was received yet, but
    not the clean stop a rolling restart and the final stop check. Blocking: call it in a thread."""
    deadline = time.monotonic() + timeout_s
    proc = soak.processes[i]
    with open(soak.workdir / f"service-{i}.log", "rb") as log:
        log.seek(soak.log_offsets.get(i, 0))
        seen = b""
        while proc is not None and proc.poll() is None and time.monotonic() < deadline:
            seen += log.read()
            if b'"event": "receiving"' in seen:
                return
            time.sleep(0.1)


def restart(soak: Soak, i: int, sig: int) -> None:
    proc = soak.processes[i]
    if sig == signal.SIGTERM:
        receiving(soak, i)
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            soak.violations.append(f"service {i} did not stop within 30 s of {signal.Signals(sig).name}")
            proc.kill()
            proc.wait()
        if sig == signal.SIGTERM and proc.returncode != 0:
            soak.violations.append(f"service {i} exited {proc.returncode} after SIGTERM{log_tail(soak, i)}")
    soak.processes[i] = start_service(soak, i)


# --- the producers ---------------------------------------------------------------------------------------------


async def produce(soak: Soak, client: Any, queue_url: str, stop: asyncio.Event, rate: float) -> None:
    """Send batches of 10 over GROUPS groups, each group's sequence numbers in order, at about ``rate``/s."""
    run = uuid.uuid4().hex[:6]
    seq: Counter[str] = Counter()
    rng = random.Random(1)
    while not stop.is_set():
        started = time.monotonic()
        entries = []
        kinds: list[str] = []
        big = 0
        for j in range(10):
            group = f"g{rng.randrange(GROUPS)}"
            s = seq[group]
            seq[group] += 1
            key = f"{run}-{group}-{s}"
            draw = rng.random()
            if draw < 0.005:
                body = f"poison {key}: not JSON"
                kinds.append("poison")
            else:
                payload: dict[str, Any] = {"seq": s}
                kinds.append("good")
                if draw > 0.9975 and big == 0:
                    payload["pad"] = "x" * BIG_BODY
                    big += 1
                    kinds[-1] = "big"
                body = json.dumps(payload)
            entries.append(
                {
                    "Id": str(j),
                    "MessageBody": body,
                    "MessageGroupId": group,
                    "MessageDeduplicationId": key,
                    "MessageAttributes": {"idempotency_key": {"DataType": "String", "StringValue": key}},
                }
            )
        if big:  # a batch is limited to 1 MiB in all: the big one goes alone
            for e, kind in zip(entries, kinds, strict=True):
                await client.send_message(QueueUrl=queue_url, **{k: v for k, v in e.items() if k != "Id"})
                soak.record_sent([e], [kind])
        else:
            result = await client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            if result.get("Failed"):
                raise RuntimeError(f"producer: send failed: {result['Failed']}")
            soak.record_sent(entries, kinds)
        await asyncio.sleep(max(0.0, 10 / rate - (time.monotonic() - started)))


# --- the faults ------------------------------------------------------------------------------------------------


def available(soak: Soak) -> list[str]:
    kinds = ["sigkill_restart", "sigterm_restart", "sigstop_past_visibility", "sqs_trouble", "handler_transient"]
    if soak.writer is not None:
        kinds += ["postgres_restart_fast", "postgres_restart_immediate"]
        if soak.replica is not None:
            kinds.append("postgres_failover")
    return kinds


async def inject(soak: Soak, rng: random.Random, deck: list[str]) -> str:
    """One fault, dealt from a shuffled deck of those available (so a short run still sees each kind);
    returns its kind once it is over (the system may still be recovering)."""
    if not deck:
        deck.extend(rng.sample(available(soak), k=len(available(soak))))
    kind = deck.pop()
    if kind not in available(soak):  # the failover happened already
        kind = "sigkill_restart"
    i = rng.randrange(len(soak.processes))
    target = {"sigkill_restart": f"service {i}", "sigstop_past_visibility": f"service {i}"}.get(kind, "")
    soak.say(f"fault {kind} {target}".rstrip() + f": starts ({len(soak.sent)} good messages sent so far)")
    if kind == "sigkill_restart":
        await asyncio.to_thread(restart, soak, i, signal.SIGKILL)
    elif kind == "sigterm_restart":  # a rolling restart, one process at a time
        for j in range(len(soak.processes)):
            await asyncio.to_thread(restart, soak, j, signal.SIGTERM)
            await asyncio.sleep(1)
    elif kind == "sigstop_past_visibility":
        proc = soak.processes[i]
        if proc is not None:
            proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(VISIBILITY_S * 1.5)
            proc.send_signal(signal.SIGCONT)
    elif kind == "handler_transient":
        # about a third of the messages fail transiently for a few seconds (a struggling dependency): each is tried
        # again in place, its group waiting behind it, well within SQS2PG_RETRY_MAX_ATTEMPTS
        seconds = rng.uniform(3, 8)
        await admin_execute(
            soak, "INSERT INTO chaos_flaky VALUES (clock_timestamp() + make_interval(secs => $1))", seconds
        )
        await asyncio.sleep(seconds)
    elif kind == "sqs_trouble":
        soak.plan.enabled = True
        await asyncio.sleep(rng.uniform(5, 15))
        soak.plan.enabled = False
    elif kind.startswith("postgres_restart"):
        assert soak.writer is not None
        mode = kind.rsplit("_", 1)[1]
        await asyncio.to_thread(soak.writer.stop, mode)
        await asyncio.sleep(rng.uniform(1, 5))
        await asyncio.to_thread(soak.writer.start)
        await asyncio.to_thread(wait_accepting, soak.writer)
    elif kind == "postgres_failover":
        assert soak.writer is not None and soak.replica is not None
        await asyncio.to_thread(soak.writer.stop, "immediate")
        await asyncio.sleep(rng.uniform(1, 4))
        await asyncio.to_thread(soak.replica.promote)
        soak.writer, soak.replica = soak.replica, None  # the old primary stays down: one failover per run
        await soak.admin_db.close()
        soak.admin_db = await connect_retrying(soak.writer.url("chaos"))
    soak.faults[kind] += 1
    soak.say(f"fault {kind}: over")
    return kind


async def connect_retrying(url: str, timeout_s: float = 60) -> asyncpg.Connection:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await asyncpg.connect(url, timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def admin_execute(soak: Soak, sql: str, *args: Any) -> None:
    """A statement on the soak's database, reconnecting when a fault took the connection away."""
    for _ in range(120):
        try:
            await soak.admin_db.execute(sql, *args)
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            with contextlib.suppress(Exception):
                await soak.admin_db.close()
            assert soak.writer is not None
            soak.admin_db = await connect_retrying(soak.writer.url("chaos"))
    raise RuntimeError("the database did not come back")


async def applied_rows(soak: Soak) -> list[tuple[str, str, int]]:
    for _ in range(120):
        try:
            rows = await soak.admin_db.fetch("SELECT idempotency_key, message_group_id, seq FROM applied ORDER BY id")
            return [(r[0], r[1], r[2]) for r in rows]
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            with contextlib.suppress(Exception):
                await soak.admin_db.close()
            assert soak.writer is not None
            soak.admin_db = await connect_retrying(soak.writer.url("chaos"))
    raise RuntimeError("the database did not come back")


async def time_to_progress(soak: Soak, timeout_s: float = 180) -> float | None:
    """Seconds until a new commit shows up, or None (a violation) past the timeout."""
    started = time.monotonic()
    before = len(await applied_rows(soak))
    while time.monotonic() - started < timeout_s:
        await asyncio.sleep(0.5)
        if len(await applied_rows(soak)) > before:
            return time.monotonic() - started
    return None


def check(soak: Soak, rows: list[tuple[str, str, int]], final: bool) -> tuple[int, int, int, int]:
    result = exactly_once(rows, set(soak.sent))
    lost = result.lost if final else 0
    if result.duplicates or result.order_violations or lost:
        examples = dict(list(result.out_of_order_groups.items())[:3])
        soak.violations.append(
            f"{'final' if final else 'running'} check: {result.duplicates} applied twice, "
            f"{result.order_violations} out of order, {lost} lost; e.g. {examples}"
        )
    return result.committed, result.duplicates, result.order_violations, lost


# --- one run, against one emulator -----------------------------------------------------------------------------


def write_traces(soak: Soak, rows: list[tuple[str, str, int]]) -> None:
    """lost.txt and duplicates.txt: what the final check counted, one message a line, for the post-mortem."""
    committed = Counter(r[0] for r in rows)
    with open(soak.workdir / "lost.txt", "w") as f:
        f.write("# good messages sent and never committed: group seq key sent_at(UTC)\n")
        for key in soak.sent:
            if key not in committed:
                group, seq, at = soak.where[key]
                stamp = time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}"
                f.write(f"{group} {seq} {key} {stamp}\n")
    with open(soak.workdir / "duplicates.txt", "w") as f:
        f.write("# keys committed more than once: key times\n")
        for key, n in committed.items():
            if n > 1:
                f.write(f"{key} {n}\n")


async def soak_once(
    sqs_name: str, minutes: float, processes: int, rate: float, seed: int, out: Path, negative_control: bool
) -> dict[str, Any]:
    workdir = out / sqs_name
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = (start_moto if sqs_name == "moto" else start_fauxqs)(port)
    clusters = Clusters() if bindir() is not None else None
    runner = None
    soak: Soak | None = None
    try:
        wait_for_port(port, server)
        sqs_url = f"http://127.0.0.1:{port}"
        os.environ.update(AWS_ACCESS_KEY_ID="chaos", AWS_SECRET_ACCESS_KEY="chaos", AWS_REGION=REGION)
        os.environ["AWS_DEFAULT_REGION"] = REGION
        writer = replica = None
        if clusters is not None:
            writer = clusters.new("primary")
            writer.init()
            writer.start()
            replica = clusters.new("replica")
            replica.replica_of(writer)
            replica.start()
            hosts = f"{writer.host},{replica.host}"
            admin = await asyncpg.connect(writer.url())
            await admin.execute("CREATE DATABASE chaos")
            await admin.close()
            database_url = f"postgresql://postgres@{hosts}/chaos?target_session_attrs=read-write"
            admin_url = writer.url("chaos")
        else:  # no server binaries: the machine's PostgreSQL, without database faults
            base = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
            admin = await asyncpg.connect(base)
            name = f"sqs2pg_chaos_{uuid.uuid4().hex[:8]}"
            await admin.execute(f'CREATE DATABASE "{name}"')
            await admin.close()
            database_url = admin_url = with_database(base, name)
        migrate_by_cli(database_url)
        db = await asyncpg.connect(admin_url)
        await db.execute(APPLIED_TABLE)
        await db.execute(CHAOS_FLAKY_TABLE)
        plan = FaultPlan(seed=seed, enabled=False)
        runner, proxy_url = await start_proxy(sqs_url, plan)
        session = aioboto3.Session()
        async with session.client("sqs", endpoint_url=sqs_url, region_name=REGION) as client:
            queue_url, dlq_url = await create_fifo_queue(
                client, f"chaos-{uuid.uuid4().hex[:6]}", max_receive_count=100, visibility_timeout_s=VISIBILITY_S
            )
            os.environ["CHAOS_QUEUE_URL"] = queue_url
            soak = Soak(sqs_name, sqs_url, proxy_url, plan, writer, replica, database_url, db, workdir)
            soak.processes = [start_service(soak, i) for i in range(processes)]
            soak.say(
                f"{processes} service processes, producers at ~{rate:g} msg/s over {GROUPS} groups, {minutes:g} min"
            )
            stop = asyncio.Event()
            producer = asyncio.create_task(produce(soak, client, queue_url, stop, rate))
            rng = random.Random(seed)
            deck: list[str] = []
            started = time.monotonic()
            last_check = started
            while time.monotonic() - started < minutes * 60:
                await asyncio.sleep(rng.uniform(2, 6))
                kind = await inject(soak, rng, deck)
                recovered = await time_to_progress(soak)
                if recovered is None:
                    soak.violations.append(f"no commit within 180 s after {kind}")
                else:
                    soak.recoveries.setdefault(kind, []).append(recovered)
                soak.say(f"{kind}: commits again after {recovered if recovered is None else round(recovered, 1)} s")
                if producer.done():
                    producer.result()  # raises what stopped it
                if time.monotonic() - last_check > 10:
                    committed, dup, order, _ = check(soak, await applied_rows(soak), final=False)
                    soak.say(
                        f"check: {committed}/{len(soak.sent)} committed, {dup} applied twice, {order} out of order"
                    )
                    last_check = time.monotonic()
            stop.set()
            await producer
            # Drain: every good message committed and the queue empty (faults over, every process running).
            soak.plan.enabled = False
            for i, proc in enumerate(soak.processes):
                if proc is None or proc.poll() is not None:
                    soak.processes[i] = start_service(soak, i)
            drain_started = last_busy = time.monotonic()
            while True:
                rows = await applied_rows(soak)
                attrs = (
                    await client.get_queue_attributes(
                        QueueUrl=queue_url,
                        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                    )
                )["Attributes"]
                depth = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
                if depth == 0 and len({r[0] for r in rows} & set(soak.sent)) == len(soak.sent):
                    break
                if depth:
                    last_busy = time.monotonic()
                elif time.monotonic() - last_busy > DRAIN_EMPTY_S:
                    soak.say(f"drain: queue empty for {DRAIN_EMPTY_S} s with good messages still uncommitted")
                    break
                if time.monotonic() - drain_started > DRAIN_MAX_S:
                    soak.violations.append(f"not drained within {DRAIN_MAX_S} s: {depth} messages left in the queue")
                    break
                await asyncio.sleep(1)
            drained_s = time.monotonic() - drain_started
            soak.say(f"drain: over after {drained_s:.1f} s")
            # Every process stopped as ECS stops a task, and each must exit 0. The waits run in threads: this loop
            # serves the SQS fault proxy the services talk through (a blocking wait here once froze it, and a
            # process still starting found SQS silent and exited 2).
            for i in range(len(soak.processes)):
                await asyncio.to_thread(receiving, soak, i)
            for proc in soak.processes:
                if proc is not None:
                    proc.send_signal(signal.SIGTERM)
            for i, proc in enumerate(soak.processes):
                if proc is not None:
                    if (code := await asyncio.to_thread(proc.wait, 30)) != 0:
                        soak.violations.append(f"service {i} exited {code} at the end{log_tail(soak, i)}")
                    soak.processes[i] = None
            if negative_control:
                dropped = await soak.admin_db.fetchval(
                    "DELETE FROM applied WHERE id = (SELECT min(id) FROM applied WHERE idempotency_key = $1) "
                    "RETURNING idempotency_key",
                    soak.sent[len(soak.sent) // 2],
                )
                soak.say(f"negative control: deleted the applied row of {dropped}; this run must report it lost")
            final_rows = await applied_rows(soak)
            committed, dup, order, lost = check(soak, final_rows, final=True)
            write_traces(soak, final_rows)
            dead = await dead_letters(client, dlq_url)
            missing_poison = soak.poison - set(dead)
            good_dead = set(dead) & set(soak.sent)
            no_reason = [k for k in soak.poison & set(dead) if not dead[k]]
            if missing_poison:
                soak.violations.append(f"{len(missing_poison)} poison messages not in the DLQ")
            if good_dead:
                soak.violations.append(f"{len(good_dead)} good messages in the DLQ: {sorted(good_dead)[:5]}")
            if no_reason:
                soak.violations.append(f"{len(no_reason)} dead-lettered without a reason: {no_reason[:5]}")
        result = {
            "sqs": sqs_name,
            "seed": seed,
            "out": str(workdir),
            "minutes": minutes,
            "processes": processes,
            "sent": len(soak.sent) + len(soak.poison),
            "good": len(soak.sent),
            "committed": committed,
            "applied_twice": dup,
            "out_of_order": order,
            "lost": lost,
            "poison": len(soak.poison),
            "poison_dead_lettered": len(soak.poison) - len(missing_poison),
            "good_dead_lettered": len(good_dead),
            "drained_s": round(drained_s, 1),
            "faults": dict(soak.faults),
            "recovery_s": {k: [round(min(v), 1), round(max(v), 1)] for k, v in soak.recoveries.items()},
            "sqs_faults_injected": sum(v for k, v in plan.counts.items() if not k.startswith("pass")),
            "violations": soak.violations,
        }
        (workdir / "report.json").write_text(json.dumps(result, indent=2) + "\n")
        return result
    finally:
        if soak is not None:
            for proc in soak.processes:
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()
            with contextlib.suppress(Exception):
                await soak.admin_db.close()
        if runner is not None:
            await runner.cleanup()
        if clusters is not None:
            clusters.close()
        server.terminate()
        server.wait(10)


async def dead_letters(client: Any, dlq_url: str) -> dict[str, str]:
    """Every message in the DLQ: idempotency key -> sqs2pg's reason attribute ("" when none)."""
    out: dict[str, str] = {}
    while True:
        r = await client.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        msgs = r.get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            attrs = m.get("MessageAttributes", {})
            key = attrs.get("idempotency_key", {}).get("StringValue", m.get("MessageId"))
            out[key] = attrs.get("sqs2pg_error_kind", {}).get("StringValue", "")
        await client.delete_message_batch(
            QueueUrl=dlq_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)]
        )


def print_report(results: list[dict[str, Any]]) -> None:
    print()
    print(
        "| SQS | minutes | processes | sent | committed | applied twice | out of order | lost | poison in DLQ "
        "| good in DLQ | faults | recovery (s, min-max) | drained (s) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(r["faults"].items()))
        recovery = ", ".join(f"{k} {a}-{b}" for k, (a, b) in sorted(r["recovery_s"].items()))
        print(
            f"| {r['sqs']} | {r['minutes']:g} | {r['processes']} | {r['sent']} | {r['committed']} | "
            f"{r['applied_twice']} | {r['out_of_order']} | {r['lost']} | {r['poison_dead_lettered']}/{r['poison']} | "
            f"{r['good_dead_lettered']} | {faults} | {recovery} | {r['drained_s']} |"
        )
    for r in results:
        for v in r["violations"]:
            print(f"VIOLATION ({r['sqs']}): {v}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10, help="how long faults are injected, per emulator")
    parser.add_argument("--sqs", choices=["moto", "fauxqs", "both"], default="both")
    parser.add_argument("--processes", type=int, default=3, help="service processes on the queue")
    parser.add_argument("--rate", type=float, default=100, help="messages per second the producers aim at")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="the faults' random seed (printed)")
    parser.add_argument("--report", type=Path, help="also write the results as JSON here")
    parser.add_argument("--out", type=Path, help="where the traces go (default: a fresh temporary directory)")
    parser.add_argument(
        "--negative-control",
        action="store_true",
        help="delete one committed good row before the final check: the run must report one lost and exit 1",
    )
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix=f"sqs2pg-chaos-{args.seed}-"))
    names = ["moto", "fauxqs"] if args.sqs == "both" else [args.sqs]
    if "fauxqs" in names and not fauxqs_installed():
        print("chaos: fauxqs is not installed (scripts/bootstrap.sh installs it); running on moto only")
        names = [n for n in names if n != "fauxqs"]
    if bindir() is None:
        print("chaos: PostgreSQL server binaries not found: no database faults in this run")
    print(f"chaos: seed {args.seed}, traces in {out}")
    signal.signal(signal.SIGTERM, _interrupt)  # clean up (processes, clusters, servers) as on Ctrl-C
    results = [
        asyncio.run(soak_once(n, args.minutes, args.processes, args.rate, args.seed, out, args.negative_control))
        for n in names
    ]
    print_report(results)
    if args.report:
        args.report.write_text(json.dumps(results, indent=2) + "\n")
    print(f"chaos: traces in {out}")
    return 1 if any(r["violations"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
