"""The mapping as a handler: each message's rows, from its body and its fields, written to every table whose
``when`` matches, in file order, inside the message's one transaction (sqs2pg's own claim of the key is in it too).

A shared transaction's rows go to each table in one statement (``unnest`` of one array per column). Where that
could differ from applying them one at a time: rows of one key are first merged as applying them in order would
leave them, and where they cannot be (different columns, a key without a value) they go one statement each, in
order; a table named by two rules gets no batch form at all (sqs2pg then applies the messages one by one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from ..errors import InvalidMessage, NoMapping, StartupError
from ..message import Message
from . import convert, pointer, spec
from .schema import Column, Target, inspect

_SCALAR = frozenset({*convert.KNOWN})
Row = dict[str, Any]
# ``newer`` compared in Python to merge a shared transaction's rows only where Python compares as SQL does
_EXACT_ORDER = frozenset(convert.INTEGERS)


class _OneByOne(Exception):
    """The batch form declines: applied one by one, the messages keep one-at-a-time semantics."""


class MappingHandler:
    """SQS2PG_MAPPING's handler. ``prepare`` reads the tables' columns (StartupError on any mismatch) before the
    first message; a batch form is offered when no table is named by two rules."""

    def __init__(self, mapping: spec.Mapping) -> None:
        self.mapping = mapping
        self.targets: list[Target] | None = None
        self._sql: dict[tuple[int, tuple[str, ...]], str] = {}
        self._stale: Any = None  # sqs2pg_mapping_stale_rows_total, by table
        self._one_table_twice = False
        names = [(t.schema, t.relname) for t in mapping.tables]
        if len(set(names)) == len(names):
            self.many = self._apply_many

    def count_stale(self, counter: Any) -> None:
        """Count rows an upsert's ``newer`` left as they were (one series per table, from 0)."""
        self._stale = counter
        for table in self.mapping.tables:
            if table.newer:
                counter.labels(table.name)

    async def prepare(self, conn: asyncpg.Connection) -> None:
        targets, problems = await inspect(conn, self.mapping)
        if problems:
            raise StartupError("\n".join(f"SQS2PG_MAPPING={self.mapping.path}: {p}" for p in problems))
        # one table under two spellings (orders, public.orders) is one table too
        tables = [await conn.fetchval("SELECT $1::regclass::oid", t.qualified) for t in targets]
        self._one_table_twice = len(set(tables)) < len(tables)
        self.targets = targets

    async def __call__(self, conn: asyncpg.Connection, message: Message) -> None:
        await self._write(conn, self._rows(message))

    async def _apply_many(self, conn: asyncpg.Connection, messages: Sequence[Message]) -> None:
        if self._one_table_twice:
            raise _OneByOne()  # sqs2pg rolls back and applies them one by one, each in its order
        by_target: dict[int, list[Row]] = {}
        for message in messages:
            for number, rows in self._rows(message).items():
                by_target.setdefault(number, []).extend(rows)
        await self._write(conn, by_target)

    async def _write(self, conn: asyncpg.Connection, by_target: dict[int, list[Row]]) -> None:
        for target in self._targets():
            rows = by_target.get(target.table.number)
            if not rows:
                continue
            merged = (rows, 0) if target.table.mode == "insert" else _once_per_key(target, rows)
            # rows that could not be merged: one statement each, in their order
            groups = [[row] for row in rows] if merged is None else list(_by_columns(merged[0]).values())
            self._count_stale(target, 0 if merged is None else merged[1])
            for group in groups:
                columns = tuple(group[0])
                arrays = [[_param(target.columns[c], row[c]) for row in group] for c in columns]
                if target.table.newer is None:
                    await conn.execute(self._statement(target, columns), *arrays)
                    continue
                written = len(await conn.fetch(self._statement(target, columns), *arrays))
                self._count_stale(target, len(group) - written)

    def _count_stale(self, target: Target, rows: int) -> None:
        """Counted as the statements run: a shared transaction rolled back and applied again one by one counts its
        stale rows again. Rows merged away by ``newer`` are stale too (in order, they would change nothing)."""
        if self._stale is not None and target.table.newer and rows > 0:
            self._stale.labels(target.table.name).inc(rows)

    def _targets(self) -> list[Target]:
        if self.targets is None:
            raise StartupError("the mapping was not checked against the database before a message")
        return self.targets

    def _rows(self, message: Message) -> dict[int, list[Row]]:
        """Each matching table's rows for this message (by the table's number); InvalidMessage saying which column
        and source could not be filled, never with the value."""
        try:
            body = convert.loads(message.body)
        except (ValueError, RecursionError) as exc:
            message.json  # noqa: B018 - raises InvalidMessage saying why the body is not JSON
            raise InvalidMessage(f"body: {exc}" if isinstance(exc, convert.NotJson) else "body is not JSON") from None
        matched = [t for t in self._targets() if _matches(t.table.when, message, body)]
        if not matched:
            if any(_matches(when, message, body) for when in self.mapping.skips):
                return {}
            raise NoMapping("no [[table]] of the mapping matches this message, and no [[skip]] does")
        out: dict[int, list[Row]] = {}
        for target in matched:
            table = target.table
            elements = [body]
            if table.each is not None:
                found = pointer.resolve(body, table.each)
                if not isinstance(found, list):
                    raise InvalidMessage(
                        f"{table.label}: each {'/' + '/'.join(table.each)} must be an array, got "
                        + ("nothing" if found is pointer.MISSING else convert.kind(found))
                    )
                elements = found
            wanted = table.key if table.mode == "delete" else tuple(table.columns)
            out[table.number] = [
                _row(target, wanted, message, body, element, index) for index, element in enumerate(elements)
            ]
        return out

    def _statement(self, target: Target, columns: tuple[str, ...]) -> str:
        key = (target.table.number, columns)  # per rule: two rules on one table differ in mode, key, newer
        cached = self._sql.get(key)
        if cached is None:
            cached = self._sql[key] = _compile(target, columns)
        return cached


def _matches(when: spec.When | None, message: Message, body: Any) -> bool:
    if when is None:
        return True
    if when.attribute is not None:
        wanted = when.equals if isinstance(when.equals, str) else json.dumps(when.equals)
        return message.attribute(when.attribute) == wanted
    found = pointer.resolve(body, when.tokens or ())
    if found is pointer.MISSING:
        return False
    if isinstance(found, bool) or isinstance(when.equals, bool):  # JSON's true is not 1
        return found is when.equals
    if isinstance(when.equals, float):  # the body's numbers are Decimals: 0.1 as written
        return isinstance(found, (int, Decimal)) and found == Decimal(repr(when.equals))
    return bool(found == when.equals)


def _row(target: Target, wanted: tuple[str, ...], message: Message, body: Any, element: Any, index: int) -> Row:
    row: Row = {}
    for name in wanted:
        source, column = target.table.columns[name], target.columns[name]
        value = _value(source, column, message, body, element, index)
        if value is pointer.MISSING:
            if column.has_default and target.table.mode != "delete":
                continue  # the column's default
            if column.not_null:
                raise InvalidMessage(
                    f"{_where(target, name)}: the message has no value there, and the column is NOT NULL"
                )
            value = None
        if value is None:
            if column.not_null:
                raise InvalidMessage(f"{_where(target, name)}: null, and the column is NOT NULL")
            row[name] = None
        elif source.field == "body" and column.typname in convert.JSON_TYPES:
            row[name] = message.body  # the body as sent: valid JSON, its numbers as written
        else:
            try:
                row[name] = convert.to_column(value, column.typname, column.element)
            except ValueError as exc:
                raise InvalidMessage(f"{_where(target, name)}: {exc}") from None
    return row


def _where(target: Target, name: str) -> str:
    return f"{target.table.label}: column {name} from {target.table.columns[name].written}"


def _value(source: spec.Source, column: Column, message: Message, body: Any, element: Any, index: int) -> Any:
    field = source.field
    if field is None:
        return pointer.resolve(body if source.from_body else element, source.tokens)
    if field == "body":
        return message.body if column.typname in convert.TEXT else body
    if field == "idempotency_key":
        return message.idempotency_key
    if field == "group_id":
        return message.group_id
    if field == "message_id":
        return message.message_id
    if field == "queue":
        return message.queue_name
    if field == "sent_at":
        return pointer.MISSING if message.sent_timestamp_ms is None else message.sent_timestamp_ms
    return message.receive_count if field == "receive_count" else index


def _once_per_key(target: Target, rows: list[Row]) -> tuple[list[Row], int] | None:
    """One row per key, as applying them in order would leave it: the last (with ``newer``, the first with the
    greatest value), and how many ``newer`` turned away (stale); None where rows cannot be merged so (one key with
    different columns, a key left out)."""
    table = target.table
    kept: dict[tuple[Any, ...], Row] = {}
    stale = 0
    newer = table.newer
    if newer is not None and target.columns[newer].typname not in _EXACT_ORDER:
        return None  # text collations, rounding to the column's precision: SQL must compare them
    for row in rows:
        if any(row.get(k) is None for k in table.key) or (newer is not None and newer not in row):
            return None  # NULLs in a unique key are all distinct; a newer left to its default is SQL's to judge
        key = tuple(row[k] for k in table.key)
        before = kept.get(key)
        if before is not None and set(before) != set(row):
            return None
        if before is None or newer is None or _greater(row.get(newer), before.get(newer)):
            kept[key] = row
        else:
            stale += 1
    return list(kept.values()), stale


def _greater(value: Any, than: Any) -> bool:
    return than is None or (value is not None and value > than)


def _by_columns(rows: list[Row]) -> dict[tuple[str, ...], list[Row]]:
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return groups


def _param(column: Column, value: Any) -> Any:
    """A value as its column's array parameter takes it: arrays as JSON text, types sqs2pg does not convert as text."""
    if value is None or (column.element is None and column.typname in _SCALAR):
        return value
    return json.dumps(value, default=str) if column.element is not None else str(value)


def _compile(target: Target, columns: tuple[str, ...]) -> str:
    table = target.table
    params, exprs = [], []
    for n, name in enumerate(columns, 1):
        column = target.columns[name]
        if column.element is not None:
            params.append(f"${n}::text[]")
            elements = f"SELECT array_agg(e #>> '{{}}') FROM jsonb_array_elements(t.c{n}::jsonb) e"
            exprs.append(
                f"CASE WHEN t.c{n} IS NULL THEN NULL ELSE coalesce(({elements}), '{{}}') END::{column.sql_type}"
            )
        elif column.typname in _SCALAR:
            params.append(f"${n}::{column.sql_type}[]")
            exprs.append(f"t.c{n}")
        else:
            params.append(f"${n}::text[]")
            exprs.append(f"t.c{n}::{column.sql_type}")
    aliases = ", ".join(f"c{n}" for n in range(1, len(columns) + 1))
    rows = f"SELECT {', '.join(exprs)} FROM unnest({', '.join(params)}) AS t({aliases})"
    names = ", ".join(f'"{c}"' for c in columns)
    if table.mode == "delete":
        return f"DELETE FROM {target.qualified} AS m WHERE ({names}) IN ({rows})"
    insert = f"INSERT INTO {target.qualified} AS m ({names}) {rows}"
    if table.mode == "insert":
        return insert
    keys = ", ".join(f'"{k}"' for k in table.key)
    rest = [c for c in columns if c not in table.key]
    if not rest:
        return f"{insert} ON CONFLICT ({keys}) DO NOTHING" + (" RETURNING 1" if table.newer else "")
    sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in rest)
    if not table.newer:
        return f"{insert} ON CONFLICT ({keys}) DO UPDATE SET {sets}"
    newer = f'm."{table.newer}" IS NULL OR m."{table.newer}" < EXCLUDED."{table.newer}"'
    return f"{insert} ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE {newer} RETURNING 1"
