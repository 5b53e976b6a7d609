"""SQS2PG_MAPPING: the file that says which tables a message writes, read once at start (TOML, the standard
library's tomllib). docs/mapping.md documents it; here it is parsed and its shape checked, each problem one line
naming the file, the table and what to change. Whether the tables and columns exist is checked against the live
database elsewhere (`sqs2pg check`, and `run` at start).

    [[table]]
    name = "orders"                                  # schema-qualified allowed: "sales.orders"
    when = { attribute = "type", equals = "order" }  # optional; or { field = "/type", equals = "order" }
    mode = "upsert"                                  # insert | upsert | delete
    key = ["order_id"]                               # a primary key or unique constraint (upsert, delete)
    newer = "version"                                # optional (upsert): update only when the incoming is greater
    each = "/lines"                                  # optional: one row per element of this array
    [table.columns]
    order_id = "/id"                                 # a JSON Pointer into the body (into the element, with each)
    sent_at = "$sent_at"                             # a message field; "$body/id": the body's, from an element

    [[skip]]                                         # messages these match, and no table does, write nothing
    when = { attribute = "type", equals = "ping" }
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StartupError
from . import pointer

MODES = ("insert", "upsert", "delete")
# What a column can take from the message besides its body: the message's own fields.
FIELDS = ("idempotency_key", "group_id", "message_id", "queue", "sent_at", "receive_count", "body", "index")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


@dataclass(frozen=True)
class Source:
    """Where a column's value comes from: a message field, or a pointer into the body (or into the element of an
    ``each`` table; ``from_body``: into the whole body even there, written ``$body/...``)."""

    written: str
    field: str | None = None
    tokens: tuple[str, ...] = ()
    from_body: bool = False


@dataclass(frozen=True)
class When:
    """A rule's condition: a message attribute, or a value in the body, equal to ``equals``."""

    equals: Any
    attribute: str | None = None
    tokens: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Table:
    number: int  # its place in the file, from 1
    name: str  # as written
    schema: str | None
    relname: str
    mode: str
    columns: dict[str, Source]
    key: tuple[str, ...] = ()
    newer: str | None = None
    when: When | None = None
    each: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        return f"[[table]] #{self.number} ({self.name})"


@dataclass(frozen=True)
class Mapping:
    path: str
    tables: tuple[Table, ...]
    skips: tuple[When, ...] = ()


def load(path: str) -> Mapping:
    """The mapping at ``path``; StartupError naming every problem, one per line."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise StartupError(f"SQS2PG_MAPPING={path}: cannot read it ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StartupError(f"SQS2PG_MAPPING={path}: not TOML: {exc}") from exc
    return parse(raw, path)


def parse(raw: dict[str, Any], path: str = "mapping") -> Mapping:
    problems: list[str] = []
    unknown = sorted(set(raw) - {"table", "skip"})
    if unknown:
        problems.append(f"unknown top-level key(s) {', '.join(unknown)}: only [[table]] and [[skip]]")
    tables = []
    for number, entry in enumerate(_list(raw.get("table", []), "[[table]]", problems), 1):
        table = _table(number, entry, problems)
        if table is not None:
            tables.append(table)
    skips = []
    for number, entry in enumerate(_list(raw.get("skip", []), "[[skip]]", problems), 1):
        where = f"[[skip]] #{number}"
        if not isinstance(entry, dict) or set(entry) != {"when"}:
            problems.append(f"{where}: takes exactly one key, when")
            continue
        if (when := _when(entry["when"], where, problems)) is not None:
            skips.append(when)
    if not tables and not problems:
        problems.append("no [[table]]: the mapping must write at least one table")
    if problems:
        raise StartupError("\n".join(f"SQS2PG_MAPPING={path}: {p}" for p in problems))
    return Mapping(path, tuple(tables), tuple(skips))


def _list(value: Any, what: str, problems: list[str]) -> list[Any]:
    if isinstance(value, list):
        return value
    problems.append(f"{what} must be an array of tables (write {what}, with double brackets)")
    return []


def _table(number: int, entry: Any, problems: list[str]) -> Table | None:
    start = len(problems)
    name = entry.get("name") if isinstance(entry, dict) else None
    where = f"[[table]] #{number}" + (f" ({name})" if isinstance(name, str) else "")
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a table")
        return None
    allowed = {"name", "when", "mode", "key", "newer", "each", "columns"}
    if extra := sorted(set(entry) - allowed):
        problems.append(f"{where}: unknown key(s) {', '.join(extra)} (known: {', '.join(sorted(allowed))})")
    parts = name.split(".") if isinstance(name, str) else []
    if not (1 <= len(parts) <= 2 and all(_IDENTIFIER.fullmatch(p) for p in parts)):
        problems.append(f"{where}: name must be a table's name, or schema.table (plain identifiers)")
        parts = ["?"]
    mode = entry.get("mode", "insert")
    if mode not in MODES:
        problems.append(f"{where}: mode must be one of {', '.join(MODES)}")
    key = entry.get("key", [])
    if not (isinstance(key, list) and all(isinstance(k, str) for k in key)):
        problems.append(f"{where}: key must be a list of column names")
        key = []
    if mode in ("upsert", "delete") and not key:
        problems.append(f"{where}: mode {mode} needs key, the columns of a primary key or unique constraint")
    newer = entry.get("newer")
    if newer is not None and (mode != "upsert" or not isinstance(newer, str)):
        problems.append(f"{where}: newer is a column name, and only for mode upsert")
        newer = None
    each = None
    if "each" in entry:
        each = _pointer(entry["each"], f"{where}: each", problems)
    columns = _columns(entry.get("columns"), where, each is not None, problems)
    for needed in [*key, *([newer] if newer else [])]:
        if columns and needed not in columns:
            problems.append(f"{where}: {needed} (in key or newer) must be one of its columns")
    when = _when(entry["when"], where, problems) if "when" in entry else None
    if len(problems) > start or not isinstance(name, str):
        return None
    return Table(
        number, name, parts[0] if len(parts) == 2 else None, parts[-1], mode, columns, tuple(key), newer, when, each
    )


def _columns(raw: Any, where: str, in_each: bool, problems: list[str]) -> dict[str, Source]:
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{where}: [table.columns] must map at least one column to a source")
        return {}
    columns: dict[str, Source] = {}
    for column, written in raw.items():
        if not _IDENTIFIER.fullmatch(column):
            problems.append(f"{where}: column {column!r} is not a plain identifier")
        elif not isinstance(written, str):
            problems.append(f"{where}: column {column}'s source must be a string: a /pointer or a $field")
        elif (source := _source(written, in_each, f"{where}: column {column}", problems)) is not None:
            columns[column] = source
    return columns


def _source(written: str, in_each: bool, where: str, problems: list[str]) -> Source | None:
    if written.startswith("$body/"):
        tokens = _pointer(written[len("$body") :], where, problems)
        return None if tokens is None else Source(written, tokens=tokens, from_body=True)
    if written.startswith("$"):
        field = written[1:]
        if field not in FIELDS:
            problems.append(f"{where}: {written} is not a message field (known: ${', $'.join(FIELDS)})")
            return None
        if field == "index" and not in_each:
            problems.append(f"{where}: $index is an element's position: only in a table with each")
            return None
        return Source(written, field=field)
    tokens = _pointer(written, where, problems)
    return None if tokens is None else Source(written, tokens=tokens)


def _pointer(written: Any, where: str, problems: list[str]) -> tuple[str, ...] | None:
    if not isinstance(written, str) or not written.startswith("/"):
        problems.append(f"{where}: must be a JSON Pointer such as /id (RFC 6901)")
        return None
    try:
        return pointer.parse(written)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _when(raw: Any, where: str, problems: list[str]) -> When | None:
    ok = isinstance(raw, dict) and "equals" in raw and len(raw) == 2 and ("attribute" in raw or "field" in raw)
    if not ok:
        problems.append(
            f'{where}: when must be {{ attribute = "name", equals = ... }} or {{ field = "/ptr", equals = ... }}'
        )
        return None
    if "attribute" in raw:
        if not isinstance(raw["attribute"], str) or not raw["attribute"]:
            problems.append(f"{where}: when's attribute must be a message attribute's name")
            return None
        return When(raw["equals"], attribute=raw["attribute"])
    tokens = _pointer(raw["field"], f"{where}: when's field", problems)
    return None if tokens is None else When(raw["equals"], tokens=tokens)
