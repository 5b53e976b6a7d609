"""The handler contract, the built-in handler, and loading a handler by import path."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

import asyncpg

from .errors import AlreadyApplied, InvalidMessage, StartupError
from .message import Message

if TYPE_CHECKING:
    from .config import Settings


class Handler(Protocol):
    """Applies one message inside the open transaction on ``conn``.

    Raise ``PermanentError`` (or any exception of your own) to dead-letter the message, ``RetryableError``
    to retry it later, ``AlreadyApplied`` when its effect is already there. Database errors are classified
    for you. Do not commit, roll back or close ``conn``: sqs2pg owns the transaction. Under load the
    transaction holds other messages too (their handlers run before and after yours, and a ``SET LOCAL`` of
    theirs may still be in force); a rolled-back transaction runs your handler again. Do not change session
    state (plain ``SET``, ``search_path``, role): connections are reused without a reset.
    """

    async def __call__(self, conn: asyncpg.Connection, message: Message) -> None: ...


class HandlesMany(Protocol):
    """The optional batch form of a handler: applies several messages (heads of different groups, and several
    consecutive messages of one group, in their order) in the open transaction, with as few statements as it can.
    It must have the same effect as calling the handler on each message in order (two of one group may touch the
    same row); if it raises, sqs2pg rolls back and applies each message on its own, so every message still gets
    its own outcome. Attach it with ``@handles_many(...)``."""

    async def __call__(self, conn: asyncpg.Connection, messages: Sequence[Message]) -> None: ...


H = TypeVar("H")


def handles_many(many: HandlesMany) -> Callable[[H], H]:
    """Decorate a handler with its batch form, used when messages of several groups share a transaction."""

    def attach(handler: H) -> H:
        handler.many = many  # type: ignore[attr-defined]
        return handler

    return attach


def batch_form(handler: Handler) -> HandlesMany | None:
    """The handler's batch form, if it offers one."""
    return getattr(handler, "many", None)


# The built-in handler's three statements (one message, a batch, fused into the claim) write the same columns.
_INTO_EVENTS = "INSERT INTO events (idempotency_key, queue_name, message_group_id, message_id, body, sent_at, envelope)"
_INSERT_EVENT = f"""
{_INTO_EVENTS}
VALUES ($1, $2, $3, $4, $5::jsonb, to_timestamp($6::bigint / 1000.0), $7)
ON CONFLICT (idempotency_key) DO NOTHING
"""
_INSERT_EVENTS = f"""
{_INTO_EVENTS}
SELECT k, q, g, m, b::jsonb, to_timestamp(s / 1000.0), e
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[])
    AS t(k, q, g, m, b, s, e)
ON CONFLICT (idempotency_key) DO NOTHING
"""


class Fused(NamedTuple):
    """A batch form as one INSERT ... SELECT that sqs2pg runs inside the statement claiming a shared transaction's
    keys (db/runs.py, claim_many), saving a round trip. It reads the claim's ``input`` (k: key, q: queue, g:
    group, m: message id, i: position) and its own arrays from $9 on, by position; ``check`` runs first on each
    message, ``args`` gives the arrays. Its rows must be one per message, or the transaction is not shared."""

    sql: str
    check: Callable[[Message], None]
    args: Callable[[Sequence[Message]], list[Any]]


_FUSED_EVENTS = f"""
{_INTO_EVENTS}
SELECT input.k, input.q, input.g, input.m, x.b::jsonb, to_timestamp(x.s / 1000.0), x.e
FROM input JOIN unnest($9::text[], $10::bigint[], $11::text[]) WITH ORDINALITY AS x(b, s, e, i) ON x.i = input.i
ORDER BY input.i
ON CONFLICT (idempotency_key) DO NOTHING
"""


def _object(message: Message) -> None:
    if not isinstance(message.json, dict):
        raise InvalidMessage("body must be a JSON object")


def _event_arrays(messages: Sequence[Message]) -> list[Any]:
    """What an event holds beside the claim's columns: the body, SentTimestamp and envelope of each message."""
    return [[m.body for m in messages], [m.sent_timestamp_ms for m in messages], [m.envelope for m in messages]]


async def insert_events(conn: asyncpg.Connection, messages: Sequence[Message]) -> None:
    """The built-in handler's batch form: every event in one INSERT ... SELECT FROM unnest(...)."""
    for message in messages:
        _object(message)
    status = await conn.execute(
        _INSERT_EVENTS,
        [m.idempotency_key for m in messages],
        [m.queue_name for m in messages],
        [m.group_id for m in messages],
        [m.message_id for m in messages],
        *_event_arrays(messages),
    )
    if int(status.rsplit(" ", 1)[-1]) != len(messages):
        raise AlreadyApplied()  # some event was there already: let each message find out alone which


@handles_many(insert_events)
async def insert_event(conn: asyncpg.Connection, message: Message) -> None:
    """The built-in handler: append the JSON object body to table ``events`` (with the envelope it came in, if
    SQS2PG_ENVELOPE opened one: the body stored is the write inside)."""
    _object(message)
    # The body goes to PostgreSQL as text and is parsed there, so jsonb gets exactly what was sent.
    status = await conn.execute(
        _INSERT_EVENT,
        message.idempotency_key,
        message.queue_name,
        message.group_id,
        message.message_id,
        message.body,
        message.sent_timestamp_ms,
        message.envelope,
    )
    if status.endswith(" 0"):
        # The idempotency record was pruned but the event is still there (e.g. a redrive months later).
        raise AlreadyApplied()


insert_event.fused = Fused(_FUSED_EVENTS, _object, _event_arrays)  # type: ignore[attr-defined]


def fused_form(handler: Handler) -> Fused | None:
    """The handler's fused form, if it offers one (the built-in handler does)."""
    return getattr(handler, "fused", None)


def load_handler(path: str) -> Handler:
    """Import ``package.module:function`` and check it is an async callable; StartupError says why not."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if module_name.startswith("service."):
            hint = " (the package is named sqs2pg since 0.2: sqs2pg.handler:insert_event)"
        elif missing and missing != module_name and not module_name.startswith(missing + "."):
            hint = f": the module imports {missing!r}, which is not installed here: install it beside sqs2pg"
        else:
            hint = ": install it into the same environment as sqs2pg, or put its folder on PYTHONPATH"
        raise StartupError(f"HANDLER={path!r}: cannot import {module_name!r} ({exc}){hint}") from exc
    except Exception as exc:  # the module itself fails: a syntax error, an exception at import time
        raise StartupError(f"HANDLER={path!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    handler = getattr(module, attr, None)
    if handler is None:
        functions = {n: getattr(module, n) for n in dir(module) if not n.startswith("_")}
        functions = {n: f for n, f in functions.items() if inspect.iscoroutinefunction(f)}
        batch_forms = {id(many) for f in functions.values() if (many := batch_form(f)) is not None}
        # the handlers one may name: not another handler's batch form (it takes a list of messages)
        names = [n for n, f in functions.items() if id(f) not in batch_forms]
        raise StartupError(
            f"HANDLER={path!r}: module {module_name!r} has no {attr!r}: name one of its async functions "
            f"({', '.join(names[:5]) or 'it has none'})"
        )
    target = handler.__call__ if not inspect.isfunction(handler) and callable(handler) else handler
    if not inspect.iscoroutinefunction(target):
        raise StartupError(f"HANDLER={path!r} must be an async function taking (conn, message)")
    return handler  # type: ignore[no-any-return]


def configured_handler(settings: Settings) -> Handler:
    """SQS2PG_MAPPING's handler (its file read and checked here, its tables at the first probe), else HANDLER's."""
    if settings.mapping:
        from .mapping import apply, spec  # noqa: PLC0415 - only with a mapping

        return apply.MappingHandler(spec.load(settings.mapping))
    return load_handler(settings.handler)
