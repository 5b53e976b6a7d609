"""Run every measurement several times, interleaved, and report medians as a table and as JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aioboto3
import asyncpg
from botocore.config import Config

from . import servers, workloads
from .report import TARGETS, cost, render

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# The queue ceiling behind the delay proxy: enough pollers that the delay, not their number, is what limits.
DELAY_CEILING_POLLERS = 32
# The mapping series' SQS2PG_MAPPING: the built-in handler's rows, written by a mapping instead.
MAPPING = Path(__file__).with_name("mapping_events.toml")
# Server connections PgBouncer keeps for the pgbouncer series: fewer than the service's pool (SQS2PG_POOL_SIZE),
# so that the pooler multiplexes, as RDS Proxy does for several tasks.
POOLER_CONNECTIONS = 4


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--runs", type=int, default=3, help="runs of each measurement; figures are medians (default 3)")
    p.add_argument("--messages", type=int, default=20_000, help="backlog for the ceilings and sqs2pg (default 20000)")
    p.add_argument(
        "--groups",
        default="100,10,1000,1",
        help="group counts for sqs2pg and the queue ceiling; the first is the headline",
    )
    p.add_argument(
        "--single-group-messages", type=int, default=2_000, help="backlog when there is 1 group (it is sequential)"
    )
    p.add_argument("--naive-messages", type=int, default=5_000, help="messages the naive consumer handles per run")
    p.add_argument(
        "--peer-messages", type=int, default=10_000, help="messages the peer (aws-sqs-consumer) handles per run"
    )
    p.add_argument("--latency-rate", type=float, default=500.0, help="paced load for the latency run, msgs/s")
    p.add_argument("--latency-seconds", type=float, default=20.0, help="measured part of the latency run")
    p.add_argument(
        "--warmup-seconds", type=float, default=3.0, help="paced load before the measured part (not counted)"
    )
    p.add_argument("--sqs-endpoint", help="an SQS endpoint to use instead of starting fauxqs")
    p.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL),
        help="PostgreSQL admin URL; database sqs2pg_bench is created there",
    )
    p.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the sqs2pg process (e.g. SQS2PG_POLLERS_PER_QUEUE=2)",
    )
    p.add_argument(
        "--delays",
        default="0,5,15,30",
        help="ms added to every SQS request (bench/delay_proxy.py) for the far-SQS series: sqs2pg on the "
        "headline group count through the proxy at each delay, 0 included (default 0,5,15,30)",
    )
    p.add_argument(
        "--delay-messages", type=int, default=10_000, help="backlog per run of the far-SQS series (default 10000)"
    )
    p.add_argument(
        "--delay-groups",
        default="100,1000",
        help="group counts of the far-SQS series; the first is the one the targets are judged on (default 100,1000)",
    )
    p.add_argument(
        "--only",
        help="for tuning: run only these measurements (comma-separated: ceilings,naive,peer,sqs2pg,flood,mapping,"
        "traces,pgbouncer,latency,delays); the ratios then cannot be computed",
    )
    p.add_argument(
        "--flood-clients",
        type=int,
        default=200,
        help="HTTP clients hammering /metrics in the flood series (sqs2pg on the headline group count; default 200)",
    )
    p.add_argument("--profile", metavar="FILE", help="py-spy the first sqs2pg backlog run into FILE (collapsed stacks)")
    p.add_argument("--json", default="bench/results/latest.json", help="where to write the figures")
    p.add_argument("--log", default=".local/bench/sqs2pg.log", help="the service processes' log")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if not result.get("partial"):
        table = render(result)
        print(table)
        out.with_suffix(".md").write_text(f"# Latest benchmark\n\n`{result['command']}`\n\n{table}\n")
        print(f"\ntables written to {out.with_suffix('.md')}")
    print(f"figures written to {out}")
    return 0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    groups = [int(g) for g in args.groups.split(",")]
    extra_env = dict(kv.split("=", 1) for kv in args.service_env)
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {}

    def record(name: str, figures: dict[str, Any]) -> None:
        runs.setdefault(name, []).append(figures)
        shown = ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
        print(f"  {name}: {shown}", file=sys.stderr, flush=True)

    def backlog(g: int) -> int:
        return args.single_group_messages if g == 1 else args.messages

    with servers.fauxqs(args.sqs_endpoint) as endpoint:
        env = servers.aws_env(endpoint)
        os.environ.update(env)
        db_url = await servers.fresh_database(args.database_url, "sqs2pg_bench")
        config = Config(region_name=servers.REGION, max_pool_connections=50, retries={"mode": "standard"})
        async with aioboto3.Session().client("sqs", config=config) as sqs:

            async def fresh_queue() -> workloads.Queue:
                return await workloads.make_queue(sqs, f"bench-{uuid.uuid4().hex[:12]}")

            async def headline(suffix: str, service_env: dict[str, str], **disturbed: Any) -> None:
                """sqs2pg on the headline group count's backlog, disturbed (a flood, a pooler), recorded as
                sqs2pg_gN plus ``suffix``."""
                q = await fresh_queue()
                g = groups[0]
                figures = await workloads.sqs2pg_backlog(
                    sqs, env, db_url, q, backlog(g), g, uuid.uuid4().hex, log, service_env, **disturbed
                )
                record(f"sqs2pg_g{g}{suffix}", figures)
                await workloads.drop_queue(sqs, q)

            only = (
                set(args.only.split(","))
                if args.only
                else {
                    *("ceilings", "naive", "peer", "sqs2pg", "flood", "mapping", "traces", "pgbouncer", "latency"),
                    "delays",
                }
            )
            delays = [float(d) for d in args.delays.split(",")] if args.delays else []
            delay_groups = [int(g) for g in args.delay_groups.split(",")]
            for r in range(args.runs):
                print(f"run {r + 1} of {args.runs}", file=sys.stderr, flush=True)
                for g in groups if "ceilings" in only else ():
                    q = await fresh_queue()
                    await workloads.fill(sqs, q, backlog(g), g, uuid.uuid4().hex)
                    record(f"queue_ceiling_g{g}", {"msgs_per_s": await workloads.queue_ceiling(sqs, q, backlog(g))})
                    await workloads.drop_queue(sqs, q)
                if "ceilings" in only:
                    record("db_ceiling", {"msgs_per_s": await workloads.db_ceiling(db_url, args.messages)})
                if "naive" in only:
                    q = await fresh_queue()
                    await workloads.fill(sqs, q, args.naive_messages, groups[0], uuid.uuid4().hex)
                    record("naive", {"msgs_per_s": await workloads.naive(sqs, q, db_url, args.naive_messages)})
                    await workloads.drop_queue(sqs, q)
                if "peer" in only:
                    q = await fresh_queue()
                    record(
                        "peer",
                        {
                            "msgs_per_s": await workloads.peer(
                                sqs, env, db_url, q, args.peer_messages, groups[0], uuid.uuid4().hex, log
                            )
                        },
                    )
                    await workloads.drop_queue(sqs, q)
                for g in groups if "sqs2pg" in only else ():
                    q = await fresh_queue()
                    profile = Path(args.profile) if args.profile and r == 0 and g == groups[0] else None
                    record(
                        f"sqs2pg_g{g}",
                        await workloads.sqs2pg_backlog(
                            sqs, env, db_url, q, backlog(g), g, uuid.uuid4().hex, log, extra_env, profile
                        ),
                    )
                    await workloads.drop_queue(sqs, q)
                if "flood" in only:  # the same backlog while clients hammer /metrics: the HTTP port must not starve it
                    await headline(f"_flood{args.flood_clients}", extra_env, flood=args.flood_clients)
                if "mapping" in only:  # the same rows written by SQS2PG_MAPPING instead of the built-in handler
                    await headline("_mapping", {**extra_env, "SQS2PG_MAPPING": str(MAPPING)})
                if "traces" in only:  # traced, its spans sent over OTLP/HTTP to a receiver process: every message,
                    # then 5% of them (the Terraform module's default ratio; these writes come with no context)
                    with servers.otlp_receiver() as otel_env:
                        await headline("_traces", {**extra_env, **otel_env})
                        sampled = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.05"}
                        await headline("_traces5", {**extra_env, **otel_env, **sampled})
                if "pgbouncer" in only:  # the same backlog through PgBouncer in transaction mode (as RDS Proxy pools)
                    with servers.pgbouncer(db_url, POOLER_CONNECTIONS) as through:
                        pooler_env = {**extra_env, "SQS2PG_DB_POOLER": "transaction"}
                        await headline("_pgbouncer", pooler_env, service_db_url=through)
                for g, d in [(g, d) for g in delay_groups for d in delays] if "delays" in only else ():
                    with servers.delayed(endpoint, d) as far:
                        # the queue alone through the same proxy: what the emulator allows at this delay
                        q = await fresh_queue()
                        await workloads.fill(sqs, q, args.delay_messages, g, uuid.uuid4().hex)
                        far_config = Config(
                            region_name=servers.REGION, max_pool_connections=64, retries={"mode": "standard"}
                        )
                        async with aioboto3.Session().client("sqs", config=far_config, endpoint_url=far) as far_sqs:
                            record(
                                f"queue_ceiling_g{g}_delay{d:g}",
                                {
                                    "msgs_per_s": await workloads.queue_ceiling(
                                        far_sqs, q, args.delay_messages, pollers=DELAY_CEILING_POLLERS
                                    )
                                },
                            )
                        await workloads.drop_queue(sqs, q)
                        q = await fresh_queue()
                        record(
                            f"sqs2pg_g{g}_delay{d:g}",
                            await workloads.sqs2pg_backlog(
                                sqs,
                                servers.aws_env(far),
                                db_url,
                                q,
                                args.delay_messages,
                                g,
                                uuid.uuid4().hex,
                                log,
                                extra_env,
                            ),
                        )
                        await workloads.drop_queue(sqs, q)
                if "latency" in only:
                    q = await fresh_queue()
                    record(
                        "latency",
                        await workloads.sqs2pg_latency(
                            sqs,
                            env,
                            db_url,
                            q,
                            args.latency_rate,
                            args.latency_seconds,
                            args.warmup_seconds,
                            groups[0],
                            uuid.uuid4().hex,
                            log,
                            extra_env,
                        ),
                    )
                    await workloads.drop_queue(sqs, q)

        exit_codes = await asyncio.to_thread(workloads.Service.reap_all)
        conn = await asyncpg.connect(db_url)
        pg_version = await conn.fetchval("SHOW server_version")
        await conn.close()

    if args.only:
        return {"partial": True, "runs": runs, "service_exit_codes": exit_codes}
    medians = {name: {k: statistics.median(fig[k] for fig in figs) for k in figs[0]} for name, figs in runs.items()}
    head = groups[0]
    rate = {name: fig["msgs_per_s"] for name, fig in medians.items() if "msgs_per_s" in fig}
    ratios = {
        "sqs2pg_over_queue_ceiling": rate[f"sqs2pg_g{head}"] / rate[f"queue_ceiling_g{head}"],
        "sqs2pg_over_naive": rate[f"sqs2pg_g{head}"] / rate["naive"],
        "sqs2pg_over_peer": rate[f"sqs2pg_g{head}"] / rate["peer"],
    }
    for g in groups:
        ratios[f"sqs2pg_over_queue_ceiling_g{g}"] = rate[f"sqs2pg_g{g}"] / rate[f"queue_ceiling_g{g}"]
    if (flooded := f"sqs2pg_g{head}_flood{args.flood_clients}") in rate:
        ratios["flood_over_quiet"] = rate[flooded] / rate[f"sqs2pg_g{head}"]
    if (mapped := f"sqs2pg_g{head}_mapping") in rate:
        ratios["mapping_over_handler"] = rate[mapped] / rate[f"sqs2pg_g{head}"]
    if (traced := f"sqs2pg_g{head}_traces") in rate:
        ratios["traces_over_off"] = rate[traced] / rate[f"sqs2pg_g{head}"]
        ratios["traces5_over_off"] = rate[f"sqs2pg_g{head}_traces5"] / rate[f"sqs2pg_g{head}"]
    if (pooled := f"sqs2pg_g{head}_pgbouncer") in rate:
        ratios["pgbouncer_over_direct"] = rate[pooled] / rate[f"sqs2pg_g{head}"]
    far_groups = int(args.delay_groups.split(",")[0])
    for d in (15, 30):
        if f"sqs2pg_g{far_groups}_delay{d}" in rate and f"sqs2pg_g{far_groups}_delay0" in rate:
            ratios[f"delay{d}_over_delay0"] = (
                rate[f"sqs2pg_g{far_groups}_delay{d}"] / rate[f"sqs2pg_g{far_groups}_delay0"]
            )
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "scripts/bench.sh " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgresql": pg_version,
            "sqs": "fauxqs" if not args.sqs_endpoint else args.sqs_endpoint,
        },
        "settings": {k: v for k, v in vars(args).items() if k not in ("database_url",)},
        "headline_groups": head,
        "service_exit_codes": exit_codes,
        "medians": medians,
        "ratios": ratios,
        "cost": cost(medians[f"sqs2pg_g{head}"]),
        "targets": TARGETS,
        "runs": runs,
    }
