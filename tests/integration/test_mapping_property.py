"""Random messages through a random mapping give the rows a plain reference model gives (SQS2PG_MAPPING, real
PostgreSQL): the same final table, and the same messages committed or dead-lettered, applied in shared
transactions and one by one alike."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqs2pg.db.store import Store
from sqs2pg.errors import Outcome
from sqs2pg.mapping import convert
from sqs2pg.mapping.apply import MappingHandler
from sqs2pg.mapping.spec import parse
from sqs2pg.message import Message

from ..support.helpers import open_store, queued

pytestmark = pytest.mark.integration
TABLE = "CREATE TABLE prop (k text PRIMARY KEY, a integer, b text, c numeric, d boolean, e jsonb, v integer)"
TYPES = {"a": "int", "b": "text", "c": "numeric", "d": "bool", "e": "jsonb", "v": "int"}
MISSING = object()


# Values any column may get: of its type and of others', small so keys and versions meet, at a range's edges, and
# strings that look like numbers.
CROSS = [True, False, 0, 1, 2, -3, 2**31, -(2**31) - 1, "1", " 7 ", "-2", "1.5", "x", "", "true", {"x": 1}, [1, "a"]]


def _values(column: str) -> st.SearchStrategy[Any]:
    if column == "v":  # versions meet often: equal, greater, smaller, missing, null
        return st.one_of(st.sampled_from([0, 1, 2, "2", None]), st.just(MISSING))
    decimals = st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-3, max_value=3)
    return st.one_of(st.sampled_from(CROSS), decimals, st.just(MISSING), st.none())


@st.composite
def scenario(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    mapped = draw(st.lists(st.sampled_from("abcde"), unique=True))
    mode = draw(st.sampled_from(["insert", "upsert"]))
    newer = mode == "upsert" and draw(st.booleans())
    columns = {"k": "/k", **{c: f"/{c}" for c in mapped}, **({"v": "/v"} if newer else {})}
    table: dict[str, Any] = {"name": "prop", "mode": mode, "columns": columns}
    if mode == "upsert":
        table["key"] = ["k"]
    if newer:
        table["newer"] = "v"
    bodies = []
    for _ in range(draw(st.integers(1, 8))):
        body = {"k": draw(st.sampled_from(["k0", "k1", "k2"]))}
        for column in [*mapped, *(["v"] if newer else [])]:
            value = draw(_values(column))
            if value is not MISSING:
                body[column] = value
        bodies.append(body)
    return {"table": [table]}, bodies


def _convert(column: str, value: Any) -> tuple[bool, Any]:
    """(fits, the stored value) by docs/mapping.md's table, written plainly."""
    kind = TYPES[column]
    if value is None or kind == "jsonb":
        return True, value
    if kind == "text":
        if isinstance(value, bool):
            return True, "true" if value else "false"
        return (True, str(value)) if isinstance(value, (str, int, Decimal)) else (False, None)
    if kind == "bool":
        return isinstance(value, bool), value
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        return False, None
    if kind == "numeric":
        try:
            return True, Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
        except ArithmeticError:
            return False, None
    if isinstance(value, str):
        if not re.fullmatch(r"-?[0-9]+", value.strip()):
            return False, None
        value = int(value)
    if isinstance(value, Decimal):
        if value != int(value):
            return False, None
        value = int(value)
    return -(2**31) <= value < 2**31, value


def reference(mapping: dict[str, Any], bodies: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[bool]]:
    """The final rows by key and whether each message committed, applying the documented rules one by one."""
    table = mapping["table"][0]
    columns = [c for c in table["columns"] if c != "k"]
    rows: dict[str, dict[str, Any]] = {}
    committed = []
    for body in bodies:
        converted = {c: _convert(c, body.get(c)) for c in columns}
        if not all(fits for fits, _ in converted.values()):
            committed.append(False)
            continue
        new = {c: value for c, (_, value) in converted.items()}
        key = body["k"]
        if table["mode"] == "insert":
            if key in rows:
                committed.append(False)
                continue
            rows[key] = new
        elif key not in rows or "newer" not in table or _newer(new["v"], rows[key]["v"]):
            rows[key] = new
        committed.append(True)
    return rows, committed


def _newer(incoming: Any, stored: Any) -> bool:
    return stored is None or (incoming is not None and incoming > stored)


@pytest.mark.parametrize("together", [True, False], ids=["shared transactions", "one by one"])
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=scenario())
async def test_random_messages_through_a_random_mapping_match_the_reference(
    database_url: str, db: asyncpg.Connection, together: bool, case: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    mapping, bodies = case
    await db.execute(f"DROP TABLE IF EXISTS prop; {TABLE}; TRUNCATE sqs2pg_idempotency")
    handler = MappingHandler(parse(mapping))
    await handler.prepare(db)
    store = await open_store(database_url, handler)
    try:
        messages = [
            queued(f"d-{i}", convert.dumps(body), f"g-{i}") for i, body in enumerate(bodies)
        ]  # numbers as drawn
        results = await store.apply_many(messages) if together else [await _one(store, m) for m in messages]
    finally:
        await store.close()
    rows, committed = reference(mapping, bodies)
    assert [r == Outcome.COMMITTED for r in results] == committed, (mapping, bodies, results)
    got = {r["k"]: {c: _plain(c, r[c]) for c in rows.get(r["k"], {})} for r in await db.fetch("SELECT * FROM prop")}
    expected = {k: {c: _plain(c, v, parsed=True) for c, v in row.items()} for k, row in rows.items()}
    assert got == expected, (mapping, bodies)


def _plain(column: str, value: Any, parsed: bool = False) -> Any:
    """jsonb compared as JSON values, numbers exactly (the table gives text, the reference the value)."""
    if TYPES[column] != "jsonb" or value is None or parsed:
        return value
    return json.loads(value, parse_float=Decimal)


async def _one(store: Store, message: Message) -> Any:
    try:
        return await store.apply(message)
    except Exception as exc:  # noqa: BLE001 - a permanent error is this message's outcome
        return exc
