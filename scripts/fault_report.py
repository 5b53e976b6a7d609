"""Run the fault suite and print its report: one row per scenario and SQS emulator.

    .venv/bin/python scripts/fault_report.py [extra pytest arguments]

Each scenario sends a known set of messages (many groups, sequence numbers in the bodies), injects its fault
while the service runs, and counts from table ``applied`` (no unique key): messages lost, duplicates
applied and order violations must all be 0. Exits non-zero if any scenario failed or any count is not 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = [
    "tests/integration/test_database_faults.py",
    "tests/integration/test_outage.py",
    "tests/integration/test_faults.py",
    "tests/integration/test_sqs_faults.py",
    "tests/integration/test_shutdown.py",
    "tests/integration/test_bad_input.py",
]
COLUMNS = [
    ("scenario", "scenario"),
    ("sqs", "SQS"),
    ("sent", "sent"),
    ("committed", "committed"),
    ("duplicates_applied", "duplicates applied"),
    ("lost", "lost"),
    ("order_violations", "order violations"),
    ("dead_lettered", "dead-lettered"),
    ("recover_s_max", "recovered after fault (s)"),
]


def main() -> int:
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as f:
        path = f.name
    env = {**os.environ, "FAULT_REPORT_FILE": path}
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "pytest"), "-q", "-p", "no:cacheprovider", *SCENARIOS, *sys.argv[1:]],
        cwd=ROOT,
        env=env,
    )
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    os.unlink(path)
    print("\n| " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    bad = 0
    for r in rows:
        r.setdefault("dead_lettered", 0)
        print("| " + " | ".join(str(r.get(key, "")) for key, _ in COLUMNS) + " |")
        bad += any(r.get(k) not in (0, "n/a") for k in ("duplicates_applied", "lost", "order_violations"))
    print(
        f"\n{len(rows)} scenario runs; pytest exit code {result.returncode}; "
        f"runs with loss, duplicates or disorder: {bad}"
    )
    return 1 if result.returncode or bad else 0


if __name__ == "__main__":
    sys.exit(main())
