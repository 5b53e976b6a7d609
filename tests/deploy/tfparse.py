"""Read the Terraform root module in deploy/terraform with hcl2, whichever flavour of it is installed.

Two distributions install the module ``hcl2`` and they disagree on the shape of the result:
- python-hcl2 (8.x): string literals keep their quotes ('"FARGATE"'), block labels too ('"aws_sqs_queue"'),
  blocks carry ``__is_block__``;
- bc-python-hcl2 (checkov's fork, what a venv with checkov has): every attribute of a block is wrapped in a
  one-element list (``"fifo_queue": [true]``), interpolations are re-rendered with Python literals.
``Body.attr`` and ``Body.blocks`` hide the difference, and ``expr`` renders an expression in one spelling.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import hcl2

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "deploy" / "terraform"
MISSING = object()


def _attributes_wrapped() -> bool:
    return isinstance(hcl2.loads('a = "x"\n')["a"], list)


WRAPPED = _attributes_wrapped()


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def clean(value: Any) -> Any:
    """Drop the parsers' bookkeeping keys (__start_line__, __is_block__, comments) and literal quotes."""
    if isinstance(value, dict):
        return {_unquote(k): clean(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("__"))}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return _unquote(value)


def expr(value: Any) -> str:
    """An attribute value as text, with HCL's spelling of null/true/false whichever parser produced it."""
    text = str(value)
    for py, hcl in (("None", "null"), ("True", "true"), ("False", "false")):
        text = re.sub(rf"\b{py}\b", hcl, text)
    # checkov's fork renders a reference nested in an expression as a quoted interpolation: '${x}' -> x
    return re.sub(r"'\$\{([^{}']*)\}'", r"\1", text)


@dataclass
class Body:
    """A block's body: attributes and nested blocks."""

    raw: dict[str, Any]
    where: str = ""

    def has(self, name: str) -> bool:
        return name in self.raw

    def attr(self, name: str, default: Any = MISSING) -> Any:
        if name not in self.raw:
            if default is MISSING:
                raise KeyError(f"{self.where}: no attribute {name!r}")
            return default
        value = self.raw[name]
        if WRAPPED:
            assert isinstance(value, list) and len(value) == 1, (self.where, name, value)
            value = value[0]
        return value

    def blocks(self, name: str) -> list[Body]:
        value = self.raw.get(name, [])
        assert isinstance(value, list), (self.where, name, value)
        return [Body(b, f"{self.where}.{name}") for b in value]

    def dynamic(self, name: str) -> list[Body]:
        """The bodies of `dynamic "<name>"` blocks (their for_each and content)."""
        out = []
        for block in self.raw.get("dynamic", []):
            if name in block:
                out.append(Body(block[name], f"{self.where}.dynamic.{name}"))
        return out


@functools.cache
def parse_file(path: Path) -> dict[str, Any]:
    with open(path) as f:
        return clean(hcl2.load(f))  # type: ignore[no-any-return]


def tf_files() -> list[Path]:
    return sorted(TF_DIR.glob("*.tf"))


def _top(kind: str) -> list[tuple[Path, Any]]:
    return [(p, item) for p in tf_files() for item in parse_file(p).get(kind, [])]


def resources(rtype: str) -> dict[str, Body]:
    out: dict[str, Body] = {}
    for path, item in _top("resource"):
        for name, body in item.get(rtype, {}).items():
            assert name not in out, f"{rtype}.{name} declared twice"
            out[name] = Body(body, f"{path.name}:{rtype}.{name}")
    return out


def all_resources() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for _, item in _top("resource"):
        for rtype, named in item.items():
            out.setdefault(rtype, set()).update(named)
    return out


@overload
def data_sources() -> dict[str, set[str]]: ...


@overload
def data_sources(dtype: str) -> dict[str, Body]: ...


def data_sources(dtype: str | None = None) -> dict[str, Body] | dict[str, set[str]]:
    if dtype is None:
        out: dict[str, set[str]] = {}
        for _, item in _top("data"):
            for t, named in item.items():
                out.setdefault(t, set()).update(named)
        return out
    found: dict[str, Body] = {}
    for path, item in _top("data"):
        for name, body in item.get(dtype, {}).items():
            found[name] = Body(body, f"{path.name}:data.{dtype}.{name}")
    return found


def variables() -> dict[str, Body]:
    out: dict[str, Body] = {}
    for path, item in _top("variable"):
        for name, body in item.items():
            assert name not in out, f"variable {name} declared twice"
            out[name] = Body(body, f"{path.name}:var.{name}")
    return out


def outputs() -> dict[str, Body]:
    out: dict[str, Body] = {}
    for path, item in _top("output"):
        for name, body in item.items():
            out[name] = Body(body, f"{path.name}:output.{name}")
    return out


def locals_() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, item in _top("locals"):
        body = Body(item, f"{path.name}:locals")
        for name in item:
            assert name not in out, f"local.{name} declared twice"
            out[name] = body.attr(name)
    return out


def terraform_blocks() -> list[Body]:
    return [Body(item, f"{p.name}:terraform") for p, item in _top("terraform")]


def code_without_comments(path: Path) -> str:
    """The file's text with # and // comments removed (quotes respected, roughly: enough for our files)."""
    out = []
    for line in path.read_text().splitlines():
        in_string = False
        cut = len(line)
        for i, ch in enumerate(line):
            if ch == '"' and (i == 0 or line[i - 1] != "\\"):
                in_string = not in_string
            elif not in_string and (ch == "#" or line.startswith("//", i)):
                cut = i
                break
        out.append(line[:cut])
    return "\n".join(out)
