"""The benchmark's table: medians beside the ceilings measured in the same run, and the targets."""

from __future__ import annotations

from typing import Any

# The targets on a 2-core machine shared by the emulator, PostgreSQL, the load and the service.
TARGETS = {
    "sqs2pg_over_queue_ceiling": 0.6,  # at least (aim for 0.8)
    "sqs2pg_over_naive": 4.0,  # at least
    "latency_p99_ms": 50.0,  # under, at the paced rate
    "peak_rss_mb": 200.0,  # under, with the backlog waiting
}


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def render(result: dict[str, Any]) -> str:
    m, ratios, head = result["medians"], result["ratios"], result["headline_groups"]
    s = result["settings"]
    runs = s["runs"]
    lines = [
        f"sqs2pg benchmark, {result['when']}: {result['machine']['cpus']} CPUs, Python {result['machine']['python']}, "
        f"PostgreSQL {result['machine']['postgresql']}, SQS: {result['machine']['sqs']}; medians of {runs} runs",
        "",
        "| measurement | messages | msgs/s | vs queue ceiling | exactly once (lost/dup/order) | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    groups = [int(g) for g in s["groups"].split(",")]

    def backlog(g: int) -> int:
        return s["single_group_messages"] if g == 1 else s["messages"]

    for g in groups:
        q = m[f"queue_ceiling_g{g}"]
        lines.append(f"| queue ceiling, {g} group{'s' if g != 1 else ''} (8 pollers, receive 10 + delete batch) | {backlog(g):,} | {q['msgs_per_s']:,.0f} | 1.00 | | |")
    lines.append(f"| database ceiling (16 connections, INSERT per message) | {s['messages']:,} | {m['db_ceiling']['msgs_per_s']:,.0f} | | | |")
    lines.append(f"| naive consumer ({head} groups: receive 1, INSERT, delete) | {s['naive_messages']:,} | {m['naive']['msgs_per_s']:,.0f} | "
                 f"{m['naive']['msgs_per_s'] / m[f'queue_ceiling_g{head}']['msgs_per_s']:.2f} | | |")
    for g in groups:
        r = m[f"sqs2pg_g{g}"]
        lines.append(
            f"| **sqs2pg, {g} group{'s' if g != 1 else ''}** (backlog, separate process) | {backlog(g):,} | **{r['msgs_per_s']:,.0f}** | "
            f"{ratios[f'sqs2pg_over_queue_ceiling_g{g}']:.2f} | {r['lost']:.0f}/{r['duplicates']:.0f}/{r['order_violations']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    lat = m["latency"]
    lines += [
        "",
        f"| latency at a paced {s['latency_rate']:.0f} msgs/s ({head} groups; sent → committed, from the database) | p50 ms | p99 ms | max ms | achieved msgs/s | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| sqs2pg, {lat['measured_messages']:,.0f} messages after {s['warmup_seconds']:.0f} s of warm-up | {lat['p50_ms']:.1f} | {lat['p99_ms']:.1f} | "
        f"{lat['max_ms']:.1f} | {lat['achieved_msgs_per_s']:,.0f} | {lat['peak_rss_mb']:.0f} |",
        "",
        "| target | measured | target | verdict |",
        "| --- | ---: | ---: | --- |",
    ]
    t = result["targets"]
    rss = max(m[f"sqs2pg_g{g}"]["peak_rss_mb"] for g in groups)
    checks = [
        (f"sqs2pg / queue ceiling ({head} groups)", ratios["sqs2pg_over_queue_ceiling"], f">= {t['sqs2pg_over_queue_ceiling']}",
         ratios["sqs2pg_over_queue_ceiling"] >= t["sqs2pg_over_queue_ceiling"], "{:.2f}"),
        (f"sqs2pg / naive ({head} groups)", ratios["sqs2pg_over_naive"], f">= {t['sqs2pg_over_naive']}",
         ratios["sqs2pg_over_naive"] >= t["sqs2pg_over_naive"], "{:.1f}x"),
        (f"latency p99 at {s['latency_rate']:.0f} msgs/s", lat["p99_ms"], f"< {t['latency_p99_ms']:.0f} ms",
         lat["p99_ms"] < t["latency_p99_ms"], "{:.1f} ms"),
        (f"peak RSS with {s['messages']:,} waiting", rss, f"< {t['peak_rss_mb']:.0f} MiB", rss < t["peak_rss_mb"], "{:.0f} MiB"),
    ]
    for name, value, target, ok, fmt in checks:
        lines.append(f"| {name} | {fmt.format(value)} | {target} | {_verdict(ok)} |")
    return "\n".join(lines)
