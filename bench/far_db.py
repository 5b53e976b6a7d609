"""PostgreSQL milliseconds away, and one hot group: sqs2pg on a backlog with every PostgreSQL round trip delayed
(bench/delay_proxy.py in front of the database), on the project's moto launcher, which hands out up to 10
messages of a group per receive as SQS does (fauxqs, the main benchmark's emulator, hands out one, so a group's
messages could never share a transaction there). Not part of `scripts/bench.sh`'s default run.

    .venv/bin/python -m bench.far_db [--delays 0,1] [--groups 1,100] [--runs 3] [--messages 2000]

Each measurement runs twice, interleaved: as shipped, and with SQS2PG_TRANSACTION_MAX_MESSAGES=1 (one message per
transaction: what a group got before runs, and what groups got before shared transactions). Medians are printed
with the range, beside the loopback figure of the same configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import aioboto3
from botocore.config import Config

from tests.support.helpers import through_local_port

from . import report, servers, workloads

ONE_PER_TRANSACTION = {"SQS2PG_TRANSACTION_MAX_MESSAGES": "1"}


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 5432}"


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--delays", default="0,1", help="ms added to every PostgreSQL round trip (default 0,1)")
    p.add_argument("--groups", default="1,100", help="group counts (default 1,100)")
    p.add_argument("--messages", type=int, default=2000, help="backlog per run (default 2000)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--database-url", default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    p.add_argument("--log", default=".local/bench/far_db.log")
    args = p.parse_args()
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with servers.moto_launcher() as endpoint:
        env = servers.aws_env(endpoint)
        os.environ.update(env)
        db_url = await servers.fresh_database(args.database_url, "sqs2pg_bench_far")
        figures: dict[tuple[float, int, str], list[float]] = {}
        config = Config(region_name=servers.REGION, max_pool_connections=50, retries={"mode": "standard"})
        async with aioboto3.Session().client("sqs", config=config) as sqs:
            for r in range(args.runs):
                for delay in (float(d) for d in args.delays.split(",")):
                    with servers.delayed(f"tcp://{_host_port(db_url)}", delay) as far:
                        far_db = through_local_port(db_url, urlsplit(far).port or 0)
                        for groups in (int(g) for g in args.groups.split(",")):
                            for mode, extra in (("as shipped", {}), ("one per transaction", ONE_PER_TRANSACTION)):
                                q = await workloads.make_queue(sqs, f"far-{uuid.uuid4().hex[:10]}")
                                result = await workloads.sqs2pg_backlog(
                                    sqs, env, db_url, q, args.messages, groups, uuid.uuid4().hex, log, extra,
                                    service_db_url=far_db,
                                )  # fmt: skip
                                await workloads.drop_queue(sqs, q)
                                if any(result[k] for k in ("lost", "duplicates", "order_violations")):
                                    raise SystemExit(f"far_db: not exactly once: {result}")
                                figures.setdefault((delay, groups, mode), []).append(result["msgs_per_s"])
                                print(
                                    f"run {r + 1}: {delay:g} ms, {groups} groups, {mode}: "
                                    f"{result['msgs_per_s']:,.0f} msgs/s",
                                    flush=True,
                                )
    lines = [
        f"`python -m bench.far_db --delays {args.delays} --groups {args.groups} --runs {args.runs}"
        f" --messages {args.messages}` ({dt.datetime.now(dt.UTC):%Y-%m-%d}, the moto launcher; medians and ranges)",
        "",
        "| ms added per PostgreSQL round trip | groups | as shipped, msgs/s | one per transaction | vs 0 ms |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for (delay, groups, mode), rates in sorted(figures.items()):
        if mode != "as shipped":
            continue
        shipped, single = rates, figures[(delay, groups, "one per transaction")]
        base = figures.get((0.0, groups, "as shipped"))
        vs = f"{statistics.median(shipped) / statistics.median(base):.2f}" if base else "-"
        lines.append(f"| {delay:g} | {groups} | {report.spread(shipped)} | {report.spread(single)} | {vs} |")
    report.publish("far_db", "PostgreSQL milliseconds away", lines)


if __name__ == "__main__":
    asyncio.run(main())
