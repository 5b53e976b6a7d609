"""The failover drill's report, from rows as the drill table holds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqs2pg.cli.drill import print_report
from sqs2pg.db.drill import summarise


def test_the_drill_report_counts_what_was_lost_duplicated_and_reordered(capsys: Any) -> None:
    t0 = datetime(2026, 12, 7, tzinfo=UTC)
    # group a: 0, 2, 1 (1 applied after 2); group b: 0, 0 (applied twice), 1 never applied; 6 were sent
    applied_after_s = [0, 1, 2, 3, 10]  # a pause of 7 s before the last apply
    rows = [
        {"message_group_id": g, "seq": s, "sent_at": t0, "applied_at": t0 + timedelta(seconds=after)}
        for (g, s), after in zip([("a", 0), ("a", 2), ("a", 1), ("b", 0), ("b", 0)], applied_after_s, strict=True)
    ]
    report = summarise(rows, "run-1", sent=6, failed=0)
    assert (report["applied"], report["lost"], report["duplicated"], report["reordered"]) == (4, 2, 1, 1)
    assert report["longest_pause_s"] == 7.0
    assert (report["latency_p50_s"], report["latency_max_s"]) == (2.0, 3.0)  # of the 4 distinct applies
    assert print_report(report, wait_s=30) is False
    assert "2 not applied within 30 s of the last send" in capsys.readouterr().out


def test_a_clean_drill_passes() -> None:
    t0 = datetime(2026, 12, 7, tzinfo=UTC)
    rows = [{"message_group_id": "a", "seq": s, "sent_at": t0, "applied_at": t0} for s in range(3)]
    report = summarise(rows, "run-2", sent=3, failed=0)
    assert (report["lost"], report["duplicated"], report["reordered"]) == (0, 0, 0)
    assert print_report(report, wait_s=30) is True
