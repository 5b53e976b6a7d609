"""SQS2PG_MAPPING against a real PostgreSQL and both SQS emulators: messages written to the user's own tables with
no handler code, each in its one transaction with its idempotency record; what does not fit is dead-lettered with
a reason naming the column and where it came from, never the value; a mapping the schema does not match stops
`run` and fails `check`, one line per problem."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sqs2pg.errors import Outcome, StartupError
from sqs2pg.mapping.apply import MappingHandler
from sqs2pg.mapping.spec import parse

from ..support.helpers import Queues, make_settings, metric, open_store, queued, run_cli, running, wait_until

pytestmark = pytest.mark.integration

TABLES = """
CREATE TABLE orders (
    order_id text PRIMARY KEY, customer text NOT NULL, amount_cents integer NOT NULL, status text,
    version integer NOT NULL, sent_at timestamptz, tags text[], placed date, created timestamptz DEFAULT now()
);
CREATE TABLE order_lines (
    order_id text NOT NULL, line_no integer NOT NULL, sku text NOT NULL, qty integer NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE kv (k text PRIMARY KEY, v jsonb);
CREATE TABLE order_events (id bigserial PRIMARY KEY, order_id text NOT NULL, status text, message_id text NOT NULL);
"""
ORDERS = """
[[table]]
name = "orders"
when = { attribute = "type", equals = "order" }
mode = "upsert"
key = ["order_id"]
newer = "version"
[table.columns]
order_id = "/id"
customer = "/customer/id"
amount_cents = "/amount_cents"
status = "/status"
version = "/version"
sent_at = "$sent_at"
tags = "/tags"
placed = "/placed"

[[table]]
name = "order_lines"
when = { attribute = "type", equals = "order" }
mode = "upsert"
key = ["order_id", "line_no"]
each = "/lines"
[table.columns]
order_id = "$body/id"
line_no = "$index"
sku = "/sku"
qty = "/qty"

[[table]]
name = "order_events"
when = { attribute = "type", equals = "order" }
[table.columns]
order_id = "/id"
status = "/status"
message_id = "$message_id"

[[skip]]
when = { attribute = "type", equals = "ping" }
"""
KV = """
[[table]]
name = "kv"
when = { field = "/op", equals = "put" }
mode = "upsert"
key = ["k"]
[table.columns]
k = "/k"
v = "/v"

[[table]]
name = "kv"
when = { field = "/op", equals = "del" }
mode = "delete"
key = ["k"]
[table.columns]
k = "/k"
"""


def _type(kind: str) -> dict[str, dict[str, str]]:
    return {"type": {"DataType": "String", "StringValue": kind}}


def _order(oid: str, version: int, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": oid,
        "customer": {"id": "c-1"},
        "amount_cents": 1250,
        "status": status,
        "version": version,
        "tags": ["new", "gift"],
        "placed": "2026-12-07",
        "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}],
        **extra,
    }


async def _records(db: asyncpg.Connection, n: int) -> bool:
    return await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency") >= n


async def test_orders_and_their_lines_land_in_their_tables_and_newer_versions_win(
    database_url: str, db: asyncpg.Connection, queues: Queues, tmp_path: Path
) -> None:
    await db.execute(TABLES)
    (tmp_path / "m.toml").write_text(ORDERS)
    # o-1's versions arrive 1, 3, 2 in its group: 2 is stale when it comes, a no-op that still commits
    sends: list[tuple[dict[str, Any], str, str]] = [
        (_order("o-1", 1, "new"), "o-1", "order"),
        (_order("o-1", 3, "shipped", lines=[{"sku": "a", "qty": 5}]), "o-1", "order"),
        (_order("o-1", 2, "paid"), "o-1", "order"),
        (_order("o-2", 1, "new"), "o-2", "order"),
        ({"hello": 1}, "p", "ping"),  # skipped: written nowhere, committed
        ({"id": "x"}, "x", "invoice"),  # no rule matches: dead-lettered
        (_order("o-3", 1, "new", amount_cents="lots-of-money"), "o-3", "order"),  # does not convert
        (_order("o-4", 1, "new", customer={}), "o-4", "order"),  # NOT NULL customer has no value
    ]
    for i, (body, group, kind) in enumerate(sends):
        await queues.send(body, group, f"m-{i}", _type(kind))
    async with running(make_settings(database_url, [queues.url], mapping=str(tmp_path / "m.toml"))) as app:
        await wait_until(lambda: _records(db, len(sends)), timeout_s=60)
        assert metric(app, "sqs2pg_mapping_stale_rows_total", table="orders") == 1  # o-1's version 2
    orders = {r["order_id"]: r for r in await db.fetch("SELECT * FROM orders")}
    assert set(orders) == {"o-1", "o-2"}
    assert (orders["o-1"]["version"], orders["o-1"]["status"]) == (3, "shipped")
    assert orders["o-1"]["tags"] == ["new", "gift"] and str(orders["o-1"]["placed"]) == "2026-12-07"
    assert orders["o-2"]["sent_at"] is not None and orders["o-2"]["created"] is not None  # a field, a default
    lines = [tuple(r) for r in await db.fetch("SELECT order_id, line_no, sku, qty FROM order_lines ORDER BY 1, 2")]
    # o-1's version 2 is stale for orders, but order_lines has no newer: its lines are the last ones applied
    assert lines == [("o-1", 0, "a", 1), ("o-1", 1, "b", 2), ("o-2", 0, "a", 1), ("o-2", 1, "b", 2)]
    dead_lettered = "SELECT message_id, error_kind, reason FROM sqs2pg_idempotency WHERE status = 'dead_lettered'"
    dead = {r["message_id"]: (r["error_kind"], r["reason"]) for r in await db.fetch(dead_lettered)}
    assert sorted(kind for kind, _ in dead.values()) == ["invalid_message", "invalid_message", "no_mapping"]
    reasons = " | ".join(reason for _, reason in dead.values())
    assert "column amount_cents from /amount_cents: expected an integer, got a string" in reasons
    assert "column customer from /customer/id: the message has no value there, and the column is NOT NULL" in reasons
    assert "lots-of-money" not in reasons
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency WHERE status = 'committed'") == 5
    # insert mode: one row per committed order message, the stale one too; none for the dead-lettered ones
    events = await db.fetch("SELECT order_id, status FROM order_events ORDER BY id")
    assert sorted(tuple(r) for r in events) == [("o-1", "new"), ("o-1", "paid"), ("o-1", "shipped"), ("o-2", "new")]


async def test_put_and_delete_by_key_and_deleting_a_missing_row_is_not_an_error(
    database_url: str, db: asyncpg.Connection, queues: Queues, tmp_path: Path
) -> None:
    await db.execute(TABLES)
    (tmp_path / "kv.toml").write_text(KV)
    ops: list[dict[str, Any]] = [
        {"op": "put", "k": "a", "v": {"n": 1}},
        {"op": "put", "k": "b", "v": [1, 2]},
        {"op": "del", "k": "a"},
        {"op": "del", "k": "never"},
        {"op": "put", "k": "b", "v": "two"},
    ]
    for i, op in enumerate(ops):
        await queues.send(op, "kv", f"op-{i}")
    async with running(make_settings(database_url, [queues.url], mapping=str(tmp_path / "kv.toml"))):
        await wait_until(lambda: _records(db, len(ops)), timeout_s=60)
    assert {r["k"]: json.loads(r["v"]) for r in await db.fetch("SELECT k, v FROM kv")} == {"b": "two"}
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency WHERE status = 'committed'") == 5


MISMATCHED = """
[[table]]
name = "nowhere"
[table.columns]
a = "/a"

[[table]]
name = "orders"
mode = "upsert"
key = ["status"]
newer = "tags"
[table.columns]
order_id = "/id"
status = "/status"
colour = "/colour"
tags = "/tags"
placed = "$message_id"
"""


async def test_a_mapping_the_schema_does_not_match_fails_check_and_stops_run(
    database_url: str, db: asyncpg.Connection, queues: Queues, tmp_path: Path
) -> None:
    await db.execute(TABLES)
    path = tmp_path / "bad.toml"
    path.write_text(MISMATCHED)
    env = {"DATABASE_URL": database_url, "SQS_QUEUE_URLS": queues.url, "SQS2PG_MAPPING": str(path)}
    checked = await run_cli("check", env=env)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    failed = [line for line in checked.stdout.splitlines() if line.startswith("FAIL")]
    expected = [
        "[[table]] #1 (nowhere): no such table",
        "[[table]] #2 (orders): no column colour",
        "[[table]] #2 (orders): column customer is NOT NULL with no default: map it",
        "[[table]] #2 (orders): column amount_cents is NOT NULL with no default: map it",
        "[[table]] #2 (orders): column version is NOT NULL with no default: map it",
        "[[table]] #2 (orders): key (status) is not a primary key or unique constraint of the table (it has: order_id)",
        "[[table]] #2 (orders): newer column tags is text[], which sqs2pg does not compare",
        "[[table]] #2 (orders): column placed (date) cannot take $message_id, which is a string",
    ]
    for problem in expected:
        assert any(problem in line for line in failed), (problem, failed)
    assert len(failed) == len(expected)
    with pytest.raises(StartupError, match="no such table"):
        async with running(make_settings(database_url, [queues.url], mapping=str(path))):
            pass
    ran = await run_cli("run", env=env)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr, ran.stderr
    assert "no column colour" in ran.stderr


def _blocks(markdown: str, language: str) -> list[str]:
    parts = markdown.split(f"```{language}\n")[1:]
    return [part.split("```", 1)[0] for part in parts]


async def test_the_worked_example_in_docs_mapping_md_works_as_pasted(
    database_url: str, db: asyncpg.Connection, queues: Queues, tmp_path: Path
) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "mapping.md").read_text()
    await db.execute(_blocks(docs, "sql")[0])
    (tmp_path / "mapping.toml").write_text(_blocks(docs, "toml")[0])
    example = json.loads(_blocks(docs, "json")[0])
    older = {**example, "version": 2, "status": "paid", "customer": {**example["customer"], "version": 16}}
    await queues.send(example, "o-1", "e-1", _type("order"))
    await queues.send(older, "o-1", "e-2", _type("order"))  # stale for orders and customers
    await queues.send({"id": "o-2", **{k: v for k, v in example.items() if k != "id"}}, "o-2", "e-3", _type("order"))
    await queues.send({"id": "o-2"}, "o-2", "e-4", _type("order_deleted"))
    await queues.send({}, "p", "e-5", _type("ping"))
    async with running(make_settings(database_url, [queues.url], mapping=str(tmp_path / "mapping.toml"))):
        await wait_until(lambda: _records(db, 5), timeout_s=60)
    assert [tuple(r) for r in await db.fetch("SELECT order_id, status, version FROM orders")] == [("o-1", "shipped", 3)]
    assert [tuple(r) for r in await db.fetch("SELECT id, name, version FROM customers")] == [("c-1", "Ada", 17)]
    lines = await db.fetch("SELECT order_id, line_no, sku, qty FROM order_lines ORDER BY 1, 2")
    assert [tuple(r) for r in lines] == [("o-1", 0, "a", 1), ("o-1", 1, "b", 2), ("o-2", 0, "a", 1), ("o-2", 1, "b", 2)]
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency WHERE status = 'committed'") == 5


EDGES = """
[[table]]
name = "flags"
when = { field = "/op", equals = "put" }
mode = "upsert"
key = ["id"]
[table.columns]
id = "/id"
enabled = "/enabled"
currency = "/currency"
tags = "/tags"

[[table]]
name = "flags"
when = { field = "/op", equals = "del" }
mode = "delete"
key = ["id"]
[table.columns]
id = "/id"
"""


async def test_two_rules_on_one_table_char_columns_and_null_arrays_keep_their_meaning(
    database_url: str, db: asyncpg.Connection
) -> None:
    """A delete rule and an upsert rule on one table with the same columns each keep their own statement; char(3)
    keeps all three characters; a null array stays NULL."""
    await db.execute(
        "CREATE TABLE flags (id text PRIMARY KEY, enabled boolean NOT NULL DEFAULT false,"
        " currency char(3) DEFAULT 'EUR', tags text[] DEFAULT '{x}')"
    )
    handler = MappingHandler(parse(tomllib.loads(EDGES)))
    await handler.prepare(db)
    store = await open_store(database_url, handler)
    bodies = [
        {"op": "put", "id": "a", "currency": "USD", "tags": None},
        {"op": "del", "id": "a"},  # compiles the delete for columns (id)
        {"op": "put", "id": "b"},  # every other column defaulted: columns (id), as the delete's
    ]
    try:
        for i, body in enumerate(bodies):
            assert await store.apply(queued(f"d{i}", body, "g")) == Outcome.COMMITTED
            if i == 0:
                row = await db.fetchrow("SELECT currency, tags FROM flags WHERE id = 'a'")
                assert (row["currency"], row["tags"]) == ("USD", None)
    finally:
        await store.close()
    assert [tuple(r) for r in await db.fetch("SELECT id, enabled, currency FROM flags")] == [("b", False, "EUR")]
