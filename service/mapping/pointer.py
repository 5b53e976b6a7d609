"""JSON Pointers (RFC 6901) into a message's body: ``/customer/id``, ``/lines/0/sku``; ``~1`` is ``/`` and ``~0``
is ``~`` inside a token. A pointer with no value there gives MISSING, never an error: what a missing value means
(a default, NULL, or a dead-lettered message) is the column's business."""

from __future__ import annotations

from typing import Any, Final


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def parse(pointer: str) -> tuple[str, ...]:
    """A pointer's tokens; ValueError (saying why) for one that is not a JSON Pointer."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise ValueError(f"{pointer!r} is not a JSON Pointer: it must start with / (RFC 6901)")
    tokens = pointer[1:].split("/")
    for token in tokens:
        bad = token.replace("~0", "").replace("~1", "")
        if "~" in bad:
            raise ValueError(f"{pointer!r} is not a JSON Pointer: ~ must be followed by 0 or 1 (RFC 6901)")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in tokens)


def resolve(document: Any, tokens: tuple[str, ...]) -> Any:
    """The value at ``tokens`` in ``document`` (parsed JSON), or MISSING."""
    here = document
    for token in tokens:
        if isinstance(here, dict):
            if token not in here:
                return MISSING
            here = here[token]
        elif isinstance(here, list):
            # RFC 6901: an array index is 0 or digits without a leading zero
            if not (token == "0" or (token.isdigit() and token.isascii() and token[0] != "0")):
                return MISSING
            index = int(token)
            if index >= len(here):
                return MISSING
            here = here[index]
        else:
            return MISSING
    return here
