"""Property-based bad input: the service never crashes, bad messages go to the DLQ with a reason, and the good
messages of the same groups, before and after them, are committed in order and unchanged."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..support.helpers import Queues, make_settings, metric, running, wait_until, write_report

pytestmark = pytest.mark.integration

# Text every server here accepts from a producer: no control characters, no lone surrogates, nothing SQS
# refuses (U+FFFE, U+FFFF), and no characters above U+FFFF (SQS takes them, fauxqs refuses them).
_SAFE = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff", max_codepoint=0xFFFD)


@dataclass
class Case:
    kind: str
    body: str
    attributes: dict[str, Any]

    @property
    def good(self) -> bool:
        return self.kind in ("object", "sql", "huge")


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return True
    return False


def _obj(**extra: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"text": st.text(_SAFE, max_size=30), **extra})


CASES = st.one_of(
    _obj().map(lambda d: Case("object", json.dumps(d, ensure_ascii=False), {})),
    st.sampled_from(["'); DROP TABLE events; --", "1 OR 1=1", "$1", "\\x00", "E'\\\\'"]).map(
        lambda s: Case("sql", json.dumps({"text": s}), {})
    ),
    st.integers(100_000, 150_000).map(lambda n: Case("huge", json.dumps({"text": "x" * n}), {})),
    st.text(_SAFE, min_size=1, max_size=50).filter(_not_json).map(lambda t: Case("not_json", t, {})),
    st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(_SAFE, max_size=10), st.none()).map(
        lambda v: Case("not_object", json.dumps(v), {})
    ),
    st.integers(2_000, 20_000).map(lambda d: Case("deep", "[" * d + "]" * d, {})),
    st.just(Case("nul", '{"text": "a\\u0000b"}', {})),
    st.just(Case("lone_surrogate", '{"text": "\\ud800"}', {})),
    st.just(Case("key_not_string", "{}", {"idempotency_key": {"DataType": "Number", "StringValue": "42"}})),
    st.text(_SAFE, min_size=1, max_size=20).map(
        lambda v: Case("odd_attributes", "{}", {"x-weird.name_1": {"DataType": "String.custom", "StringValue": v}})
    ),
)
# Kinds that are fine after all: odd attributes do not make a message bad.
GOOD_KINDS = {"object", "sql", "huge", "odd_attributes"}


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
@given(cases=st.lists(CASES, min_size=4, max_size=14), reuse_key=st.booleans())
async def test_bad_input_never_crashes_and_never_blocks_good_messages(
    database_url, db, queues: Queues, cases, reuse_key
) -> None:
    run = uuid.uuid4().hex[:8]
    sent: list[tuple[str, Case, str]] = []  # (group, case, key)
    for i, case in enumerate(cases):
        group = f"{run}-g{i % 3}"
        key = f"{run}-k{i}"
        attrs = {"idempotency_key": {"DataType": "String", "StringValue": key}, **case.attributes}
        await queues.send(case.body, group, uuid.uuid4().hex, attrs)
        sent.append((group, case, key))
    if reuse_key:
        # The same key as the first message, another body: a producer bug, not a duplicate.
        group, first, key = sent[0]
        other = Case("key_reused", json.dumps({"text": "another body " + run}), {})
        await queues.send(
            other.body, group, uuid.uuid4().hex, {"idempotency_key": {"DataType": "String", "StringValue": key}}
        )
        sent.append((group, other, key))
    expected_good = [(g, c, k) for g, c, k in sent if c.kind in GOOD_KINDS]
    if reuse_key and sent[0][1].kind not in GOOD_KINDS:
        # the first was bad and never committed its key, so the "reused" one is simply a good new message
        expected_good.append(sent[-1])
    q = queues.name

    async with running(make_settings(database_url, [queues.url])) as app:
        await wait_until(lambda: _settled(app, q, len(sent), queues), timeout_s=60)

    rows = await db.fetch(
        "SELECT message_group_id AS g, idempotency_key AS k, body::text AS b FROM events"
        " WHERE message_group_id LIKE $1 ORDER BY id",
        run + "-%",
    )
    # Good messages: all committed, each once, in send order within their group, bodies as sent.
    for group in {g for g, _, _ in sent}:
        committed = [r["k"] for r in rows if r["g"] == group]
        assert committed == [k for g, _, k in expected_good if g == group], group
    by_key = {r["k"]: r["b"] for r in rows}
    for _, case, key in expected_good:
        assert json.loads(by_key[key]) == json.loads(case.body)
    # Bad messages: all in the DLQ, each with a reason.
    dead = await queues.receive_all(queues.dlq_url)
    dead_for_run = [m for m in dead if m["Attributes"]["MessageGroupId"].startswith(run)]
    assert len(dead_for_run) == len(sent) - len(expected_good)
    for m in dead_for_run:
        reason = m["MessageAttributes"]["sqs2pg_error_kind"]["StringValue"]
        assert reason in {"invalid_message", "data", "key_reused"}, reason
        assert m["MessageAttributes"]["sqs2pg_error"]["StringValue"]
    write_report(
        {
            "scenario": "bad input (hypothesis example)",
            "sent": len(sent),
            "committed": len(expected_good),
            "duplicates_applied": "n/a",
            "lost": 0,
            "order_violations": 0,
            "dead_lettered": len(dead_for_run),
        }
    )


async def _settled(app, q: str, n: int, queues: Queues) -> bool:  # type: ignore[no-untyped-def]
    total = sum(
        metric(app, "sqs2pg_messages_total", queue=q, outcome=o) for o in ("committed", "duplicate", "dead_lettered")
    )
    return total >= n and await queues.depth() == 0
