"""Configuration: parsed from the environment once, at start-up, into a frozen object.

Every tuning knob is named ``SQS2PG_<NAME>`` with its unit in the name. An unknown ``SQS2PG_*`` variable
is rejected rather than ignored, so a typo cannot silently leave a default in force.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from . import database_url
from .envelope import MODES as ENVELOPE_MODES
from .errors import StartupError

PREFIX = "SQS2PG_"
DEFAULT_HANDLER = "sqs2pg.handler:insert_event"


class ConfigError(StartupError, ValueError):
    """The environment does not describe a valid configuration."""


def _knob(
    default: Any, doc: str, lo: float | None = None, hi: float | None = None, choices: tuple[str, ...] = ()
) -> Any:
    """A tuning knob: its default, its meaning (for `sqs2pg run --help`), its range, or the words it takes."""
    return field(default=default, metadata={"doc": doc, "lo": lo, "hi": hi, "choices": choices})


@dataclass(frozen=True)
class Settings:
    database_url: str
    queue_urls: tuple[str, ...]
    region: str
    http_port: int = 8080
    handler: str = DEFAULT_HANDLER

    # --- tuning knobs: SQS2PG_<FIELD NAME IN UPPER CASE> ---
    http_host: str = _knob("0.0.0.0", "address the HTTP port binds to")
    receive_wait_s: int = _knob(
        5, "long-poll wait of one ReceiveMessage call; a stop lets a poll in flight finish, so keep it under 10", 0, 20
    )
    receive_batch_size: int = _knob(10, "messages asked for per ReceiveMessage call", 1, 10)
    visibility_timeout_s: int = _knob(30, "visibility timeout asked for on receive; the heartbeat extends it", 5, 43200)
    heartbeat_fraction: float = _knob(
        0.5, "extend a held message's visibility once this fraction of it has passed", 0.1, 0.9
    )
    pollers_per_queue: int = _knob(
        16,
        "most ReceiveMessage calls in flight per queue; adapts from 1 (idle) up while receives come back full",
        1,
        64,
    )
    max_concurrent_groups: int = _knob(16, "message groups handled at the same time (worker tasks)", 1, 1024)
    transaction_max_messages: int = _knob(
        10,
        "messages applied in one transaction when several are ready: heads of different groups, then the messages"
        " held right behind them in their group's order (1: one per transaction)",
        1,
        100,
    )
    max_in_memory_messages: int = _knob(
        200, "messages held in memory (received, not yet acknowledged); pollers wait above it", 10, 100000
    )
    db_pool_size: int = _knob(0, "PostgreSQL connections; 0 means max_concurrent_groups + 2", 0, 1000)
    db_connect_timeout_s: float = _knob(5.0, "time allowed to open a PostgreSQL connection", 0.5, 120)
    db_statement_timeout_s: float = _knob(
        15.0, "time allowed for one statement (client side and server side)", 0.5, 3600
    )
    transaction_timeout_s: float = _knob(
        60.0, "longest a transaction (handler included) may run; then it is rolled back and retried later", 1.0, 3600
    )
    breaker_threshold: int = _knob(3, "consecutive database-unavailable failures that pause receiving", 1, 1000)
    retry_base_s: float = _knob(
        2.0, "first retry delay after a transient failure; doubles per attempt (retried in place)", 0.0, 43200
    )
    retry_max_s: float = _knob(300.0, "cap on the retry delay", 1.0, 43200)
    retry_max_attempts: int = _knob(
        10,
        "transient failures of one message before it is dead-lettered (retries_exhausted); about 10 minutes of "
        "trying with the default delays",
        1,
        1000,
    )
    shutdown_grace_s: float = _knob(20.0, "time in-flight work gets to finish after SIGTERM", 0.0, 110)
    ack_flush_interval_ms: int = _knob(
        5,
        "longest a commit waits to be batched into DeleteMessageBatch (none when nothing else in memory could join)",
        0,
        1000,
    )
    idempotency_retention_days: float = _knob(
        7.0, "how long idempotency records are kept (they go by the UTC day); 0 keeps them for ever", 0.0, 3650
    )
    prune_interval_s: float = _knob(
        600.0, "how often one replica drops expired days of records and creates the next (also at start)", 1.0, 86400
    )
    prune_batch_size: int = _knob(
        1000, "rows deleted per transaction where records are deleted one by one (the default partition)", 1, 100000
    )
    depth_sample_interval_s: float = _knob(
        15.0, "how often queue and dead-letter queue depths are sampled into metrics; 0 turns it off", 0.0, 3600
    )
    on_permanent_error: str = _knob(
        "dead_letter",
        "dead_letter: a message that fails permanently goes to the DLQ and its group goes on; quarantine_group: "
        "its group's later messages follow it to the DLQ until `sqs2pg quarantine release`",
        choices=("dead_letter", "quarantine_group"),
    )
    envelope: str = _knob(
        "none",
        "none: the body is the write; sns / eventbridge: every body is an SNS notification / EventBridge event and "
        "the handler gets the message inside; auto: each envelope of either kind is opened",
        choices=ENVELOPE_MODES,
    )
    error_detail: str = _knob(
        "hidden",
        "hidden: a reason names the error, its SQLSTATE, table, column and constraint, never a row's or the body's "
        "values; full: PostgreSQL's DETAIL and the handler's whole message too (for debugging: they may hold data)",
        choices=("hidden", "full"),
    )
    db_pooler: str = _knob(
        "none",
        "none: DATABASE_URL reaches PostgreSQL itself (or a pooler in session mode); transaction: a pooler that "
        "hands out a server connection per transaction (PgBouncer pool_mode=transaction, RDS Proxy): nothing is kept "
        "on a connection between transactions (no prepared statements, timeouts set in each transaction, locks "
        "taken per transaction), so the pooler multiplexes instead of pinning",
        choices=("none", "transaction"),
    )
    mapping: str = _knob(
        "", "a TOML file naming the tables each message writes (docs/mapping.md): instead of HANDLER, no code"
    )
    writes_endpoint: str = _knob(
        "off",
        "on: the HTTP port also serves GET /writes/{key}, a write's status (never its body)",
        choices=("off", "on"),
    )
    sqs_client: str = _knob(
        "lean",
        "the hot SQS calls through sqs2pg's lean JSON client (lean) or the AWS SDK (aioboto3)",
        choices=("lean", "aioboto3"),
    )
    log_level: str = _knob("INFO", "DEBUG, INFO, WARNING or ERROR", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    @property
    def pool_size(self) -> int:
        return self.db_pool_size or self.max_concurrent_groups + 2

    def redacted_database_url(self) -> str:
        return database_url.redact(self.database_url)

    def server_timeouts(self) -> dict[str, str]:
        return database_url.server_timeouts(self.db_statement_timeout_s)

    def begin(self) -> str:
        return database_url.begin(self.db_statement_timeout_s, self.db_pooler)

    def connect_kwargs(self) -> dict[str, Any]:
        """Arguments for asyncpg.connect / create_pool, shared by the service, migrations and `check`."""
        return database_url.connect_kwargs(
            self.database_url, self.db_connect_timeout_s, self.db_statement_timeout_s, self.db_pooler
        )


def _close_to(name: str, known: set[str]) -> str | None:
    """The known setting a misspelt one most likely meant, judged on what follows SQS2PG_ (which they all share):
    SQS2PG_MAX_CONCURENT_GROUPS finds SQS2PG_MAX_CONCURRENT_GROUPS; SQS2PG_FOO finds nothing."""
    rest = {k.removeprefix(PREFIX): k for k in known}
    close = difflib.get_close_matches(name.removeprefix(PREFIX), rest, n=1, cutoff=0.75)
    return rest[close[0]] if close else None


def knob_fields() -> list[Any]:
    return [f for f in fields(Settings) if "doc" in f.metadata]


def _convert(name: str, raw: str, kind: Any, metadata: Mapping[str, Any]) -> Any:
    converters: dict[Any, Callable[[str], Any]] = {"int": int, "float": float, "str": str}
    try:
        value = converters[kind](raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind}") from None
    if kind == "float" and not math.isfinite(value):  # nan passes every comparison below
        raise ConfigError(f"{name}={raw!r} is not a finite number")
    lo, hi, choices = metadata.get("lo"), metadata.get("hi"), metadata.get("choices")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise ConfigError(f"{name}={raw!r} is out of range [{lo}, {hi}]")
    if choices:
        # the words are matched whatever their case (INFO or info), and kept as declared
        chosen = next((c for c in choices if c.lower() == value.lower()), None)
        if chosen is None:
            listed = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
            raise ConfigError(f"{name}={raw!r} is not {listed}")
        value = chosen
    return value


def _endpoint_problem(name: str, url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range or not a number
    except ValueError:
        return f"{name}={url!r} has an invalid port (1 to 65535)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{name}={url!r} must be an http:// or https:// URL"
    return None


def region_from_url(url: str) -> str | None:
    """The AWS region a queue URL names (https://sqs.REGION.amazonaws.com/...), or None."""
    m = re.match(r"sqs[.-]([a-z0-9-]+)\.amazonaws\.com", urlsplit(url).hostname or "")
    return m.group(1) if m else None


def load(env: Mapping[str, str] | None = None, require_database: bool = True, require_queues: bool = True) -> Settings:
    """Parse the environment into Settings, or raise ConfigError naming every problem found.

    ``require_database=False`` is for commands that only talk to SQS (the dead-letter tooling),
    ``require_queues=False`` for those that only talk to PostgreSQL (migrations)."""
    env = os.environ if env is None else env
    problems: list[str] = []
    values: dict[str, Any] = {}

    db = env.get("DATABASE_URL", "").strip()
    if not db and require_database:
        problems.append("DATABASE_URL is required (postgresql://user@host:5432/dbname)")
    elif db and (problem := database_url.problem(db)):
        problems.append(problem)
    database_url.hide(db)  # from here on no line sqs2pg prints shows its password
    values["database_url"] = db

    urls = tuple(u.strip() for u in env.get("SQS_QUEUE_URLS", "").split(",") if u.strip())
    if not urls and require_queues:
        problems.append("SQS_QUEUE_URLS is required (comma-separated FIFO queue URLs)")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.path.rstrip("/").endswith(".fifo"):
            problems.append(f"SQS_QUEUE_URLS entry {url!r} is not the URL of a FIFO queue (…/name.fifo)")
        elif problem := _endpoint_problem("SQS_QUEUE_URLS entry", url):
            problems.append(problem)
    for name in ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"):
        if env.get(name) and (problem := _endpoint_problem(name, env[name])):
            problems.append(problem)
    if len(set(urls)) != len(urls):
        problems.append("SQS_QUEUE_URLS names the same queue twice")
    values["queue_urls"] = urls

    region = (
        env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or next(filter(None, map(region_from_url, urls)), None)
    )
    if not region and require_queues:
        problems.append("AWS_REGION is required (it cannot be read from the queue URLs)")
    values["region"] = region or ""

    try:
        if "HTTP_PORT" in env:
            values["http_port"] = _convert("HTTP_PORT", env["HTTP_PORT"], "int", {"lo": 0, "hi": 65535})
    except ConfigError as exc:
        problems.append(str(exc))
    handler = env.get("HANDLER", DEFAULT_HANDLER).strip()
    if not handler:
        problems.append(
            f"HANDLER is set but empty: unset it for the built-in handler ({DEFAULT_HANDLER}) or name yours"
        )
    elif not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", handler):
        problems.append(f"HANDLER={handler!r} must look like package.module:function")
    values["handler"] = handler

    known = set()
    for f in knob_fields():
        var = PREFIX + f.name.upper()
        known.add(var)
        if var in env:
            try:
                values[f.name] = _convert(var, env[var], f.type, f.metadata)
            except ConfigError as exc:
                problems.append(str(exc))
    unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in known)
    if unknown:
        named = [f"{k} (did you mean {close}?)" if (close := _close_to(k, known)) else k for k in unknown]
        problems.append(f"unknown setting(s): {', '.join(named)}")

    if values.get("mapping") and "HANDLER" in env:
        problems.append("HANDLER and SQS2PG_MAPPING are both set: a message is applied by one of them, unset the other")
    settings = None if problems else Settings(**values)
    if settings is not None and settings.retry_max_s < settings.retry_base_s:
        problems.append("SQS2PG_RETRY_MAX_S is below SQS2PG_RETRY_BASE_S")
    if problems or settings is None:
        # One line naming every problem: all an operator has to fix, in one restart.
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return settings
