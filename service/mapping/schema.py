"""The mapping checked against the live database: each table and column exists, nothing NOT NULL without a default
is left out, ``key`` is a primary key or unique constraint, ``newer`` can be compared. Read once at start (`run`
refuses to start on any problem) and by `sqs2pg check`; schema changes are the user's migrations, seen at the next
start."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from . import convert
from .spec import Mapping, Table

_COLUMNS = """
SELECT a.attname, t.typname,
       -- cast to the type without its length: char and bit without one mean char(1) and bit(1) in a cast
       CASE t.typname WHEN 'bpchar' THEN 'bpchar' WHEN '_bpchar' THEN 'bpchar[]' WHEN 'bit' THEN 'varbit'
                      WHEN '_bit' THEN 'varbit[]' ELSE format_type(a.atttypid, NULL) END AS sql_type,
       CASE WHEN t.typcategory = 'A' THEN e.typname END AS element,
       a.attnotnull AS not_null, (a.atthasdef OR a.attidentity <> '') AS has_default, a.attgenerated <> '' AS generated
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type e ON e.oid = t.typelem
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
# Each unique index usable as ON CONFLICT's target: valid, not deferrable, no predicate, no expression; its key
# columns (not its INCLUDE ones).
_UNIQUE = """
SELECT array_agg(a.attname::text ORDER BY k.ord) AS columns
FROM pg_index i CROSS JOIN unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indimmediate AND i.indisvalid
  AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY i.indexrelid
"""
_ORDERABLE = frozenset({*convert.INTEGERS, *convert.FLOATS, "timestamptz", "timestamp", "date", *convert.TEXT})


_NUMBERS = frozenset({"sent_at", "receive_count", "index"})  # the message fields that are numbers; the rest strings


def _takes(column: Column, field: str) -> bool:
    """Whether a column can ever take a message field's value (a pointer's can only be judged per message)."""
    if column.element is not None:
        return False
    if field == "body":
        return column.typname in convert.TEXT | convert.JSON_TYPES
    if field in _NUMBERS:
        return column.typname not in {"bool", "date", "uuid"}
    return column.typname not in {*convert.INTEGERS, *convert.FLOATS, "bool", "date", "timestamptz", "timestamp"}


@dataclass(frozen=True)
class Column:
    name: str
    typname: str  # pg_type.typname: what convert.to_column reads it by
    sql_type: str  # format_type: what the statements cast to
    element: str | None  # an array's element typname
    not_null: bool
    has_default: bool
    generated: bool


@dataclass(frozen=True)
class Target:
    """A [[table]] with its columns as the database has them."""

    table: Table
    qualified: str  # "schema"."table", quoted
    columns: dict[str, Column]  # the mapped ones, in the mapping's order


def qualified(table: Table) -> str:
    quoted = f'"{table.relname}"'
    return f'"{table.schema}".{quoted}' if table.schema else quoted


async def inspect(conn: asyncpg.Connection, mapping: Mapping) -> tuple[list[Target], list[str]]:
    """Each table as the database has it, and every problem (one line each: the table and what to change)."""
    targets: list[Target] = []
    problems: list[str] = []
    for table in mapping.tables:
        name = qualified(table)
        if await conn.fetchval("SELECT to_regclass($1)", name) is None:
            problems.append(f"{table.label}: no such table (names are exact: as PostgreSQL stores them)")
            continue
        found = {r["attname"]: Column(*r.values()) for r in await conn.fetch(_COLUMNS, name)}
        start = len(problems)
        for column in table.columns:
            if column not in found:
                problems.append(f"{table.label}: no column {column} (it has {', '.join(found)})")
            elif found[column].generated:
                problems.append(f"{table.label}: column {column} is generated: it cannot be written, unmap it")
            elif (field := table.columns[column].field) is not None and not _takes(found[column], field):
                problems.append(
                    f"{table.label}: column {column} ({found[column].sql_type}) cannot take ${field}, which is "
                    f"{'the body' if field == 'body' else 'a number' if field in _NUMBERS else 'a string'}"
                )
        if table.mode != "delete":
            for have in found.values():
                if have.not_null and not have.has_default and have.name not in table.columns:
                    problems.append(f"{table.label}: column {have.name} is NOT NULL with no default: map it")
        if table.key:
            uniques = [tuple(r["columns"]) for r in await conn.fetch(_UNIQUE, name)]
            if not any(set(u) == set(table.key) for u in uniques):
                listed = "; ".join(", ".join(u) for u in uniques) or "none"
                problems.append(
                    f"{table.label}: key ({', '.join(table.key)}) is not a primary key or unique constraint of the "
                    f"table (it has: {listed})"
                )
        if table.newer and table.newer in found and found[table.newer].typname not in _ORDERABLE:
            problems.append(
                f"{table.label}: newer column {table.newer} is {found[table.newer].sql_type}, which sqs2pg does not "
                "compare: use a number, a time, a date or text"
            )
        if len(problems) == start:
            targets.append(Target(table, name, {c: found[c] for c in table.columns}))
    return targets, problems
