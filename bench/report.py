"""The benchmark's tables: medians beside the ceilings measured in the same run, cost, and the targets."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

# The targets (issue 10) on a 2-core machine shared by the emulator, PostgreSQL, the load and the service.
TARGETS = {
    "cpu_us_per_msg": 250.0,  # at most, at the headline group count, over the drain
    "sqs2pg_over_queue_ceiling": 0.9,  # at least, at the headline group count
    "no_collapse": 0.5,  # at least, of its own ceiling, at every other group count
    "delay15_over_delay0": 0.8,  # at least: 15 ms added to every SQS request, default settings
    "delay30_over_delay0": 0.6,  # at least
    "sqs2pg_over_peer": 3.0,  # at least
    "latency_p99_ms": 20.0,  # under, at the paced rate
    "peak_rss_mb": 150.0,  # under, with the backlog waiting
    "flood_over_quiet": 0.5,  # at least: 200 clients hammering /metrics (issue 21)
}

# Prices for the cost table: AWS's published on-demand prices for us-east-1 (checked 2026-11): Fargate Linux/x86
# $0.04048 per vCPU-hour and $0.004445 per GB-hour; SQS FIFO $0.50 per million requests (a batch of 10 is one
# request; each 64 KiB of a payload counts as one). Other regions differ by 10-30%.
FARGATE_VCPU_HOUR = 0.04048
FARGATE_GB_HOUR = 0.004445
GB_PER_VCPU = 2.0  # the smallest memory Fargate allows beside 1 vCPU
SQS_FIFO_PER_MILLION_REQUESTS = 0.50


def spread(rates: list[float]) -> str:
    """A series' median with its range: 2,582 (2,479-2,686)."""
    return f"{statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"


def publish(name: str, title: str, lines: list[str]) -> None:
    """Print a side series' table and keep it as bench/results/NAME.md."""
    print("\n" + "\n".join(lines))
    out = Path(__file__).parent / "results" / f"{name}.md"
    out.write_text(f"# {title}\n\n" + "\n".join(lines) + "\n")
    print(f"written to {out}")


def cost(run: dict[str, Any]) -> dict[str, float]:
    """What one busy vCPU carries and what a million messages cost on the consumer's side, from one run."""
    cpu_us = run["cpu_us_per_msg"]
    vcpu_hours_per_million = cpu_us / 3600  # 1e6 messages x cpu_us µs = cpu_us seconds of one vCPU
    requests_per_million = 1e6 * (1 / run["msgs_per_receive"] + 1 / run["msgs_per_delete"])
    return {
        "msgs_per_s_per_vcpu": 1e6 / cpu_us,
        "compute_usd_per_million": vcpu_hours_per_million * (FARGATE_VCPU_HOUR + GB_PER_VCPU * FARGATE_GB_HOUR),
        "sqs_requests_per_million": requests_per_million,
        "sqs_usd_per_million": requests_per_million / 1e6 * SQS_FIFO_PER_MILLION_REQUESTS,
    }


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _groups(n: int) -> str:
    return f"{n} group{'s' if n != 1 else ''}"


def render(result: dict[str, Any]) -> str:
    m, ratios, head = result["medians"], result["ratios"], result["headline_groups"]
    s = result["settings"]
    groups = [int(g) for g in s["groups"].split(",")]

    def backlog(g: int) -> int:
        return s["single_group_messages"] if g == 1 else s["messages"]

    lines = [
        f"sqs2pg benchmark, {result['when']}: {result['machine']['cpus']} CPUs, Python {result['machine']['python']}, "
        f"PostgreSQL {result['machine']['postgresql']}, SQS: {result['machine']['sqs']}; medians of {s['runs']} runs",
        "",
        "| measurement | messages | msgs/s | vs queue ceiling | CPU µs/msg | exactly once (lost/dup/order) | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for g in groups:
        q = m[f"queue_ceiling_g{g}"]
        lines.append(
            f"| queue ceiling, {_groups(g)} (8 pollers, receive 10 + delete batch) | {backlog(g):,} | {q['msgs_per_s']:,.0f} | 1.00 | | | |"
        )
    lines.append(
        f"| database ceiling (16 connections, INSERT per message) | {s['messages']:,} | {m['db_ceiling']['msgs_per_s']:,.0f} | | | | |"
    )
    ceiling = m[f"queue_ceiling_g{head}"]["msgs_per_s"]
    for name, label, n in (
        ("naive", "naive consumer (receive 1, INSERT, delete)", s["naive_messages"]),
        ("peer", "aws-sqs-consumer 0.0.15 (batch 10, one transaction per message)", s["peer_messages"]),
    ):
        lines.append(
            f"| {label}, {_groups(head)} | {n:,} | {m[name]['msgs_per_s']:,.0f} | {m[name]['msgs_per_s'] / ceiling:.2f} | | | |"
        )
    for g in groups:
        r = m[f"sqs2pg_g{g}"]
        lines.append(
            f"| **sqs2pg, {_groups(g)}** (backlog, separate process) | {backlog(g):,} | **{r['msgs_per_s']:,.0f}** | "
            f"{ratios[f'sqs2pg_over_queue_ceiling_g{g}']:.2f} | {r['cpu_us_per_msg']:.0f} | "
            f"{r['lost']:.0f}/{r['duplicates']:.0f}/{r['order_violations']:.0f} | {r['peak_rss_mb']:.0f} |"
        )

    for name, label in (
        (
            f"sqs2pg_g{head}_flood{s.get('flood_clients', 200)}",
            f"{s.get('flood_clients', 200)} clients hammering /metrics",
        ),
        (f"sqs2pg_g{head}_mapping", "the same rows written by SQS2PG_MAPPING (bench/mapping_events.toml)"),
        (f"sqs2pg_g{head}_traces", "every message traced, spans sent over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT)"),
        (
            f"sqs2pg_g{head}_traces5",
            "traced as the Terraform module does: 5% of the writes that come without a context",
        ),
        (
            f"sqs2pg_g{head}_pgbouncer",
            "through PgBouncer, transaction mode, 4 server connections (SQS2PG_DB_POOLER=transaction)",
        ),
    ):
        if name in m:
            r = m[name]
            lines.append(
                f"| sqs2pg, {_groups(head)}, {label} | {backlog(head):,} | {r['msgs_per_s']:,.0f} | "
                f"{r['msgs_per_s'] / ceiling:.2f} | {r['cpu_us_per_msg']:.0f} | "
                f"{r['lost']:.0f}/{r['duplicates']:.0f}/{r['order_violations']:.0f} | {r['peak_rss_mb']:.0f} |"
            )

    delays = [float(d) for d in s["delays"].split(",")] if s.get("delays") else []
    delay_groups = [int(g) for g in s.get("delay_groups", str(head)).split(",")]
    if delays:
        lines += [
            "",
            f"| SQS far away: ms added to every SQS request (bench/delay_proxy.py), {s['delay_messages']:,} waiting, default "
            "settings | groups | queue ceiling at that delay (32 pollers) | sqs2pg msgs/s | vs its 0 ms | vs that ceiling | "
            "CPU µs/msg | msgs per receive | exactly once (lost/dup/order) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for g in delay_groups:
            base = m.get(f"sqs2pg_g{g}_delay0", {}).get("msgs_per_s")
            for d in delays:
                r = m[f"sqs2pg_g{g}_delay{d:g}"]
                far_ceiling = m.get(f"queue_ceiling_g{g}_delay{d:g}", {}).get("msgs_per_s")
                vs = f"{r['msgs_per_s'] / base:.2f}" if base else ""
                vs_ceiling = f"{r['msgs_per_s'] / far_ceiling:.2f}" if far_ceiling else ""
                lines.append(
                    f"| {d:g} | {g:,} | {far_ceiling or 0:,.0f} | {r['msgs_per_s']:,.0f} | {vs} | {vs_ceiling} | "
                    f"{r['cpu_us_per_msg']:.0f} | {r['msgs_per_receive']:.1f} | "
                    f"{r['lost']:.0f}/{r['duplicates']:.0f}/{r['order_violations']:.0f} |"
                )

    lat = m["latency"]
    lines += [
        "",
        f"| latency at a paced {s['latency_rate']:.0f} msgs/s ({_groups(head)}; sent → committed, from the database) | p50 ms | p99 ms | max ms | achieved msgs/s | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| sqs2pg, {lat['measured_messages']:,.0f} messages after {s['warmup_seconds']:.0f} s of warm-up | {lat['p50_ms']:.1f} | {lat['p99_ms']:.1f} | "
        f"{lat['max_ms']:.1f} | {lat['achieved_msgs_per_s']:,.0f} | {lat['peak_rss_mb']:.0f} |",
    ]

    c = cost(m[f"sqs2pg_g{head}"])
    lines += [
        "",
        f"| cost, from sqs2pg's {_groups(head)} run | CPU µs/msg | msgs/s per busy vCPU | compute $ per million msgs | "
        "SQS requests per million msgs | SQS $ per million msgs |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| receive and delete (the producer's sends not counted) | {m[f'sqs2pg_g{head}']['cpu_us_per_msg']:.0f} | "
        f"{c['msgs_per_s_per_vcpu']:,.0f} | {c['compute_usd_per_million']:.4f} | {c['sqs_requests_per_million']:,.0f} | "
        f"{c['sqs_usd_per_million']:.3f} |",
        "",
        "| target | measured | target | verdict |",
        "| --- | ---: | ---: | --- |",
    ]
    t = result["targets"]
    rss = max([m[f"sqs2pg_g{g}"]["peak_rss_mb"] for g in groups] + [lat["peak_rss_mb"]])
    cpu = m[f"sqs2pg_g{head}"]["cpu_us_per_msg"]
    checks = [
        (
            f"CPU per message ({_groups(head)})",
            f"{cpu:.0f} µs",
            f"<= {t['cpu_us_per_msg']:.0f} µs",
            cpu <= t["cpu_us_per_msg"],
        ),
        (
            f"sqs2pg / queue ceiling ({_groups(head)})",
            f"{ratios['sqs2pg_over_queue_ceiling']:.2f}",
            f">= {t['sqs2pg_over_queue_ceiling']}",
            ratios["sqs2pg_over_queue_ceiling"] >= t["sqs2pg_over_queue_ceiling"],
        ),
    ]
    for g in groups[1:]:
        r = ratios[f"sqs2pg_over_queue_ceiling_g{g}"]
        checks.append(
            (
                f"no collapse: sqs2pg / queue ceiling ({_groups(g)})",
                f"{r:.2f}",
                f">= {t['no_collapse']}",
                r >= t["no_collapse"],
            )
        )
    if "flood_over_quiet" in ratios:
        checks.append(
            (
                f"under a /metrics flood / quiet ({_groups(head)})",
                f"{ratios['flood_over_quiet']:.2f}",
                f">= {t['flood_over_quiet']}",
                ratios["flood_over_quiet"] >= t["flood_over_quiet"],
            )
        )
    for d, key in ((15.0, "delay15_over_delay0"), (30.0, "delay30_over_delay0")):
        if key in ratios:
            checks.append(
                (
                    f"{d:g} ms added / 0 ms ({_groups(delay_groups[0])})",
                    f"{ratios[key]:.2f}",
                    f">= {t[key]}",
                    ratios[key] >= t[key],
                )
            )
    checks += [
        (
            f"sqs2pg / aws-sqs-consumer ({_groups(head)})",
            f"{ratios['sqs2pg_over_peer']:.1f}x",
            f">= {t['sqs2pg_over_peer']:.0f}x",
            ratios["sqs2pg_over_peer"] >= t["sqs2pg_over_peer"],
        ),
        (
            f"latency p99 at {s['latency_rate']:.0f} msgs/s",
            f"{lat['p99_ms']:.1f} ms",
            f"< {t['latency_p99_ms']:.0f} ms",
            lat["p99_ms"] < t["latency_p99_ms"],
        ),
        (
            f"peak RSS with {s['messages']:,} waiting",
            f"{rss:.0f} MiB",
            f"< {t['peak_rss_mb']:.0f} MiB",
            rss < t["peak_rss_mb"],
        ),
    ]
    exactly_once = [
        (n, r) for n, runs in result["runs"].items() if n.startswith("sqs2pg") or n == "latency" for r in runs
    ]
    bad = sum(1 for _, r in exactly_once if (r["lost"], r["duplicates"], r["order_violations"]) != (0, 0, 0))
    checks.append(("runs with anything lost, duplicated or reordered", f"{bad} of {len(exactly_once)}", "0", bad == 0))
    for name, value, target, ok in checks:
        lines.append(f"| {name} | {value} | {target} | {_verdict(ok)} |")
    return "\n".join(lines)
