"""The one check of what sqs2pg promises, shared by the fault suite and the benchmark: from rows committed in
commit order, each (key, group, seq), against the keys sent."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class ExactlyOnce:
    committed: int  # distinct keys sent and committed
    lost: int  # keys sent and never committed
    duplicates: int  # rows beyond the first for a key
    order_violations: int  # rows of a group committed after a row with a higher seq of that group
    out_of_order_groups: dict[str, list[int]] = field(default_factory=dict)  # a few, to show

    @property
    def clean(self) -> bool:
        return (self.lost, self.duplicates, self.order_violations) == (0, 0, 0)


def exactly_once(rows: Iterable[tuple[str, str, int]], sent_keys: set[str]) -> ExactlyOnce:
    """Rows are (idempotency key, group, seq) in commit order. A row of a group whose seq is below the
    highest seq already committed in that group is one order violation (a duplicate row counts as a
    duplicate, not as a violation)."""
    keys: list[str] = []
    by_group: dict[str, list[int]] = {}
    highest: dict[str, int] = {}
    violations = 0
    for key, group, seq in rows:
        duplicate = key in keys
        keys.append(key)
        by_group.setdefault(group, []).append(seq)
        if not duplicate and seq < highest.get(group, -1):
            violations += 1
        highest[group] = max(seq, highest.get(group, -1))
    distinct = set(keys)
    bad = {g: seqs for g, seqs in by_group.items() if any(b < a for a, b in zip(seqs, seqs[1:], strict=False))}
    return ExactlyOnce(
        committed=len(distinct & sent_keys),
        lost=len(sent_keys - distinct),
        duplicates=len(keys) - len(distinct),
        order_violations=violations,
        out_of_order_groups=dict(list(bad.items())[:3]),
    )
