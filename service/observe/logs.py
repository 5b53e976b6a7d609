"""Structured JSON logs: one line per event, with an ``action`` field and never a message body."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from .. import database_url

logger = logging.getLogger("sqs2pg")

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        # never a password, wherever a line quotes DATABASE_URL (a driver's message, a traceback)
        return database_url.scrub(json.dumps(line, default=str, ensure_ascii=False))


def setup(level: str = "INFO") -> None:
    """Send every log line to stdout as JSON (the container's log driver picks it up)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # botocore logs request details (and, at DEBUG, signed headers): keep it quiet.
    # (alembic says "Running upgrade ..." per migration: `sqs2pg migrate` prints its own one-line result.)
    for noisy in ("botocore", "aiobotocore", "aioboto3", "urllib3", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # OpenTelemetry warns once per message about a malformed trace context a producer sent (it is then ignored,
    # and sqs2pg's own lines say which trace a message is in); its exporter's warnings stay.
    for chatty in ("opentelemetry.trace", "opentelemetry.util.re", "opentelemetry.attributes"):
        logging.getLogger(chatty).setLevel(logging.ERROR)


def event(level: int, text: str, action: str, **fields: Any) -> None:
    """Log one event with an ``action`` and extra fields."""
    if logger.isEnabledFor(level):
        logger.log(level, text, extra={"action": action, **fields})
