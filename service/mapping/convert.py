"""A JSON value made into what a PostgreSQL column of a given type takes, by the rules docs/mapping.md states:

- text kinds: a string, or a number or boolean as the body wrote it; never an object or an array;
- integer kinds: an integral number, or a string of digits, within the type's range;
- numeric, real, double: a number or a numeric string (numbers are read from the body exactly, as Decimal);
- boolean: true or false only;
- timestamptz: an ISO 8601 string with an offset (or Z), or epoch milliseconds; timestamp: ISO 8601 without one,
  or epoch milliseconds (UTC); date: YYYY-MM-DD; uuid: its string;
- json, jsonb: any JSON value;
- arrays of any of these: a JSON array, each element by its type;
- any other type (an enum, inet, interval...): a string, which PostgreSQL converts.

A value that does not convert raises ValueError saying what was expected and what kind of JSON came, never the
value itself (it may be personal data: the hostile-input rule).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

TEXT = frozenset({"text", "varchar", "bpchar", "name", "citext"})
INTEGERS = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
FLOATS = frozenset({"numeric", "float4", "float8"})
JSON_TYPES = frozenset({"json", "jsonb"})
KNOWN = TEXT | set(INTEGERS) | FLOATS | JSON_TYPES | {"bool", "timestamptz", "timestamp", "date", "uuid"}
_DIGITS = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_YEAR_9999_MS = Decimal(253_402_300_799_999)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def kind(value: Any) -> str:
    """The JSON kind of a value, to name in an error instead of the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


class NotJson(ValueError):
    """What Python's json reads but JSON does not allow (NaN, Infinity)."""


def loads(body: str) -> Any:
    """A body parsed with its numbers exact (Decimal), as the mapping reads it; an integer longer than Python
    parses by default (4,300 digits) is a Decimal too; NaN and Infinity are refused (JSON has neither)."""
    return json.loads(body, parse_float=Decimal, parse_int=_whole, parse_constant=_constant)


def _constant(name: str) -> Any:
    raise NotJson(f"{name} is not a JSON value")


def _whole(text: str) -> int | Decimal:
    return int(text) if len(text) < 4000 else Decimal(text)


def dumps(value: Any) -> str:
    """JSON text of a value parsed by loads, its numbers exactly as they were read (jsonb keeps them so too)."""
    try:
        return json.dumps(value, ensure_ascii=False)  # no Decimal in it: the C encoder
    except TypeError:
        return _exact(value)


def _exact(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {_exact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_exact(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def to_column(value: Any, typname: str, element: str | None = None) -> Any:
    """``value`` (not None) for a column whose pg_type.typname is ``typname`` (``element``: an array's element
    type's typname, where ``typname`` is an array's)."""
    if element is not None:
        if not isinstance(value, list):
            raise ValueError(f"expected an array, got {kind(value)}")
        return [None if v is None else to_column(v, element) for v in value]
    if typname in TEXT:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, Decimal, float)):
            return str(value)  # as the body wrote it: read as a Decimal, 2.50 stays 2.50
        raise ValueError(f"expected a string, got {kind(value)}")
    if typname in INTEGERS:
        return _integer(value, INTEGERS[typname], typname)
    if typname in FLOATS:
        number = _decimal(value)
        if typname == "numeric":
            if not -16000 < number.adjusted() < 100000:  # PostgreSQL's numeric takes about these exponents
                raise ValueError("expected a number numeric can hold, got one out of its range")
            return number
        limit = 3.4e38 if typname == "float4" else 1.7e308
        if number.adjusted() > 308 or abs(float(number)) > limit:
            raise ValueError(f"expected a number {typname} can hold, got one out of its range")
        return float(number)
    if typname == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {kind(value)}")
    if typname in ("timestamptz", "timestamp"):
        return _timestamp(value, aware=typname == "timestamptz")
    if typname == "date":
        if isinstance(value, str) and _DATE.fullmatch(value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise ValueError(f"expected a date as YYYY-MM-DD, got {kind(value)}" + _not_one(value))
    if typname == "uuid":
        if isinstance(value, str):
            try:
                return uuid.UUID(value)
            except ValueError:
                pass
        raise ValueError(f"expected a UUID string, got {kind(value)}" + _not_one(value))
    if typname in JSON_TYPES:
        return dumps(value)
    if isinstance(value, str):
        return value  # PostgreSQL converts it (an enum's label, an inet, an interval...)
    raise ValueError(f"expected a string PostgreSQL can read as {typname}, got {kind(value)}")


def _not_one(value: Any) -> str:
    return " that is not one" if isinstance(value, str) else ""


def _integer(value: Any, bound: int, typname: str) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, Decimal) and value.adjusted() > 20:  # int() of 1e999999999 would take minutes
        raise ValueError(f"expected an integer that fits {typname}, got one out of its range")
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, (Decimal, float)) and value == int(value):
        number = int(value)
    else:
        raise ValueError(f"expected an integer, got {kind(value)}" + (" that is not whole" if kind(value) in (
            "a number", "a string") else ""))  # fmt: skip
    if not -bound <= number < bound:
        raise ValueError(f"expected an integer that fits {typname}, got one out of its range")
    return number


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            pass
    raise ValueError(f"expected a number, got {kind(value)}" + _not_one(value))


def _timestamp(value: Any, aware: bool) -> dt.datetime:
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        number = Decimal(value)
        if number.adjusted() > 15 or number.copy_abs() > _YEAR_9999_MS:
            raise ValueError("expected epoch milliseconds up to the year 9999, got a number beyond it")
        if value == int(value):
            utc = dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
            return utc if aware else utc.replace(tzinfo=None)
    moment = _iso(value) if isinstance(value, str) else None
    if moment is None:
        raise ValueError(f"expected an ISO 8601 time or epoch milliseconds, got {kind(value)}" + _not_one(value))
    if aware and moment.tzinfo is None:
        raise ValueError("expected an ISO 8601 time with an offset (or Z), got one without")
    if not aware and moment.tzinfo is not None:
        raise ValueError("expected an ISO 8601 time without an offset (the column has no time zone)")
    return moment


def _iso(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None
