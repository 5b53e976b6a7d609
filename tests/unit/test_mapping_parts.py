"""The declarative mapping's pure parts (issue 25, not wired into `run` yet): JSON Pointers, value conversion by
column type, and the file's shape."""

from __future__ import annotations

import datetime as dt
import tomllib
import uuid
from decimal import Decimal

import pytest

from sqs2pg.errors import StartupError
from sqs2pg.mapping import convert, pointer, spec


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("/customer/id", 7),
        ("/lines/1/sku", "b"),
        ("/a~1b", 1),  # ~1 is /
        ("/m~0n", 2),  # ~0 is ~
        ("", {"customer": {"id": 7}, "lines": [{"sku": "a"}, {"sku": "b"}], "a/b": 1, "m~n": 2, "": 3}),
        ("/", 3),  # the empty key
        ("/lines/01", pointer.MISSING),  # no leading zero in an index
        ("/lines/2", pointer.MISSING),
        ("/customer/id/x", pointer.MISSING),
        ("/nothing", pointer.MISSING),
    ],
)
def test_pointers_resolve_as_rfc_6901_says(written: str, expected: object) -> None:
    body = {"customer": {"id": 7}, "lines": [{"sku": "a"}, {"sku": "b"}], "a/b": 1, "m~n": 2, "": 3}
    assert pointer.resolve(body, pointer.parse(written)) == expected


@pytest.mark.parametrize("bad", ["id", "/a~2", "/~"])
def test_a_pointer_that_is_not_one_says_why(bad: str) -> None:
    with pytest.raises(ValueError, match="not a JSON Pointer"):
        pointer.parse(bad)


@pytest.mark.parametrize(
    ("value", "typname", "expected"),
    [
        ("x", "text", "x"),
        (42, "text", "42"),
        (True, "varchar", "true"),
        (42, "int4", 42),
        ("-42", "int8", -42),
        (Decimal("3.0"), "int2", 3),
        (Decimal("1.10"), "numeric", Decimal("1.10")),
        ("2.5e3", "numeric", Decimal("2.5e3")),
        (1, "float8", 1.0),
        (False, "bool", False),
        ("2026-12-07T10:00:00Z", "timestamptz", dt.datetime(2026, 12, 7, 10, tzinfo=dt.UTC)),
        (1765101600000, "timestamptz", dt.datetime(2025, 12, 7, 10, tzinfo=dt.UTC)),
        ("2026-12-07T10:00:00", "timestamp", dt.datetime(2026, 12, 7, 10)),
        ("2026-12-07", "date", dt.date(2026, 12, 7)),
        ("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "uuid", uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")),
        ({"a": [1, Decimal("2.5")]}, "jsonb", '{"a": [1, 2.5]}'),
        ("shipped", "order_status", "shipped"),  # an enum: PostgreSQL reads the label
    ],
)
def test_values_convert_by_the_columns_type(value: object, typname: str, expected: object) -> None:
    assert convert.to_column(value, typname) == expected


def test_arrays_convert_element_by_element() -> None:
    assert convert.to_column([1, "2", None], "_int4", "int4") == [1, 2, None]
    with pytest.raises(ValueError, match="expected an array, got a number"):
        convert.to_column(1, "_int4", "int4")


@pytest.mark.parametrize(
    ("value", "typname", "message"),
    [
        ({"secret": "x"}, "text", "expected a string, got an object"),
        ("12a", "int4", "expected an integer, got a string that is not whole"),
        (Decimal("1.5"), "int4", "expected an integer, got a number that is not whole"),
        (2**31, "int4", "out of its range"),
        (True, "int8", "got a boolean"),
        ("yes", "bool", "expected true or false, got a string"),
        ("2026-12-07T10:00:00", "timestamptz", "with an offset"),
        ("2026-12-07T10:00:00+01:00", "timestamp", "without an offset"),
        ("07/12/2026", "date", "YYYY-MM-DD, got a string that is not one"),
        ("not-a-uuid", "uuid", "UUID string, got a string that is not one"),
        ("lots", "numeric", "expected a number, got a string that is not one"),
        ([1], "inet", "a string PostgreSQL can read as inet, got an array"),
    ],
)
def test_a_value_that_does_not_convert_says_what_was_expected_but_never_the_value(
    value: object, typname: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as failed:
        convert.to_column(value, typname)
    assert "secret" not in str(failed.value) and "12a" not in str(failed.value)


def test_bodies_are_read_with_exact_numbers() -> None:
    assert convert.loads('{"amount": 0.1, "n": 3}') == {"amount": Decimal("0.1"), "n": 3}


EXAMPLE = """
[[table]]
name = "sales.orders"
when = { attribute = "type", equals = "order" }
mode = "upsert"
key = ["order_id"]
newer = "version"
[table.columns]
order_id = "/id"
version = "/version"
sent_at = "$sent_at"

[[table]]
name = "order_lines"
each = "/lines"
[table.columns]
order_id = "$body/id"
line_no = "$index"
sku = "/sku"

[[skip]]
when = { field = "/type", equals = "ping" }
"""


def test_the_documented_shape_parses() -> None:
    mapping = spec.parse(tomllib.loads(EXAMPLE))
    orders, lines = mapping.tables
    assert (orders.schema, orders.relname, orders.mode, orders.key, orders.newer) == (
        "sales",
        "orders",
        "upsert",
        ("order_id",),
        "version",
    )
    assert orders.when == spec.When("order", attribute="type")
    assert orders.columns["sent_at"] == spec.Source("$sent_at", field="sent_at")
    assert lines.each == ("lines",) and lines.mode == "insert"
    assert lines.columns["order_id"] == spec.Source("$body/id", tokens=("id",), from_body=True)
    assert lines.columns["sku"].tokens == ("sku",)
    assert mapping.skips == (spec.When("ping", tokens=("type",)),)


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ('[[table]]\nname = "t"\nmode = "merge"\n[table.columns]\na = "/a"', "mode must be one of insert, upsert"),
        ('[[table]]\nname = "t"\nmode = "upsert"\n[table.columns]\na = "/a"', "mode upsert needs key"),
        ('[[table]]\nname = "t"\nkey = ["b"]\nmode = "delete"\n[table.columns]\na = "/a"', "b (in key or newer)"),
        ('[[table]]\nname = "t"\nnewer = "a"\n[table.columns]\na = "/a"', "only for mode upsert"),
        ('[[table]]\nname = "t; drop"\n[table.columns]\na = "/a"', "name must be a table's name"),
        ('[[table]]\nname = "t"\n[table.columns]\na = "a"', "column a: must be a JSON Pointer"),
        ('[[table]]\nname = "t"\n[table.columns]\na = "$who"', "$who is not a message field"),
        ('[[table]]\nname = "t"\n[table.columns]\na = "$index"', "only in a table with each"),
        ('[[table]]\nname = "t"\nwhen = { attribute = "x" }\n[table.columns]\na = "/a"', "when must be"),
        ('[[table]]\nname = "t"\ncolums = 1\n[table.columns]\na = "/a"', "unknown key(s) colums"),
        ('[[table]]\nname = "t"', "[table.columns] must map at least one column"),
        ("[[skip]]\nwhen = { attribute = 'type', equals = 'x' }", "no [[table]]"),
        ('tables = 1\n[[table]]\nname = "t"\n[table.columns]\na = "/a"', "unknown top-level key(s) tables"),
    ],
)
def test_each_mistake_is_one_line_naming_the_table_and_what_to_change(toml: str, problem: str) -> None:
    with pytest.raises(StartupError) as refused:
        spec.parse(tomllib.loads(toml), "m.toml")
    assert problem in str(refused.value)
    assert all(line.startswith("SQS2PG_MAPPING=m.toml: ") for line in str(refused.value).splitlines())


def test_a_file_that_is_missing_or_not_toml_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StartupError, match="cannot read it"):
        spec.load(str(tmp_path / "nope.toml"))
    (tmp_path / "bad.toml").write_text("[[table]\n")
    with pytest.raises(StartupError, match="not TOML"):
        spec.load(str(tmp_path / "bad.toml"))


def test_handler_and_mapping_together_are_refused_in_one_line() -> None:
    from sqs2pg import config

    env = {"DATABASE_URL": "postgresql://x/y", "SQS_QUEUE_URLS": "https://sqs.us-east-1.amazonaws.com/1/q.fifo"}
    assert config.load({**env, "SQS2PG_MAPPING": "m.toml"}).mapping == "m.toml"
    with pytest.raises(config.ConfigError, match="HANDLER and SQS2PG_MAPPING are both set") as refused:
        config.load({**env, "SQS2PG_MAPPING": "m.toml", "HANDLER": "app.handlers:apply"})
    assert "\n" not in str(refused.value)


def test_a_huge_integer_is_read_and_refused_by_an_integer_column_without_quoting_it() -> None:
    huge = convert.loads('{"n": ' + "9" * 5000 + "}")["n"]
    assert isinstance(huge, Decimal)
    with pytest.raises(ValueError, match="out of its range") as refused:
        convert.to_column(huge, "int8")
    assert "999" not in str(refused.value)
    assert convert.to_column(huge, "numeric") == huge


@pytest.mark.parametrize(
    ("value", "typname", "message"),
    [
        (Decimal("1e999999999"), "int4", "out of its range"),  # refused at once, not after building the integer
        (Decimal("1e999999999"), "timestamptz", "up to the year 9999"),
        (Decimal("1e39"), "float4", "float4 can hold"),
        (Decimal("1e-20000"), "numeric", "numeric can hold"),
    ],
)
def test_numbers_no_column_can_hold_are_refused_quickly(value: Decimal, typname: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        convert.to_column(value, typname)


def test_nan_and_infinity_are_not_json() -> None:
    with pytest.raises(convert.NotJson, match="NaN is not a JSON value"):
        convert.loads('{"a": NaN}')
