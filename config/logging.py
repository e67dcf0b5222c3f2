"""Log lines for people (plain) and for log pipelines (JSON, one object per line).

Herald's log calls pass what identifies the work as `extra` fields (`event_id`, `delivery_id`,
`subscriber_id`, `attempt`, `status`, `duration_ms`, ...) rather than formatting them into the
message, so the JSON formatter can emit them as fields a log pipeline indexes, and the plain one
appends them as `key=value` pairs.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

FORMATS = ("plain", "json")

# Everything a LogRecord carries by itself; anything else on it came in through `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
_SCALARS = (str, int, float, bool, UUID, Decimal, datetime, date, type(None))


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra={...}` fields of a record, in the order they were given."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal, date)):
        return str(value)
    return value if isinstance(value, (*_SCALARS, list, dict, tuple)) else repr(value)


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...extra fields}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            entry.setdefault(key, _jsonable(value))
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        # default=repr: a log call must never raise because a field is not JSON.
        return json.dumps(entry, default=repr, separators=(",", ":"))


class PlainFormatter(logging.Formatter):
    """`time LEVEL logger message key=value ...`: the extra fields, readable in a terminal."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, **kwargs) -> None:
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s %(message)s", datefmt, **kwargs)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        # Objects such as Django's request are left out: their repr is noise in a terminal.
        pairs = [
            f"{key}={_plain(value)}"
            for key, value in extra_fields(record).items()
            if isinstance(value, _SCALARS)
        ]
        return " ".join([line, *pairs]) if pairs else line


def _plain(value: Any) -> str:
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    # A value with spaces is quoted, so `reason="HTTP 500: boom"` stays one readable pair.
    return json.dumps(text) if (not text or any(c.isspace() or c == '"' for c in text)) else text


def logging_config(*, log_format: str, level: str, queue_level: str) -> dict[str, Any]:
    """Django's LOGGING: everything to stderr in one format, at `level`."""
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"()": "config.logging.PlainFormatter"},
            "json": {"()": "config.logging.JsonFormatter"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # django-q2 logs every enqueue at INFO; that is noise at thousands of jobs a second.
            "django-q": {"level": queue_level},
        },
    }
