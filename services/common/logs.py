"""Logging for every entry point: the level, the format (JSON or readable lines), per service.

The level is ``LLMESH_LOG_LEVEL`` (else INFO). A service started from a configuration file
(`apply_service_levels`) takes ``LLMESH_<SERVICE>_LOG_LEVEL``, else ``LLMESH_LOG_LEVEL``,
else ``telemetry.logs.levels.<service>``, else ``telemetry.logs.level``. The format is one
JSON object per line when stderr is not a terminal or ``LLMESH_LOG_FORMAT=json``, and a
readable line on a terminal or with ``LLMESH_LOG_FORMAT=text``. A JSON record carries the
record's structured fields (``extra=``): the call log's fields (its ``call`` mapping) at
the top level. The call log's records are written in batches (`BufferedStreamHandler`: at
most 0.2 s late, before any other record, and all of them when the process exits).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from llmesh.services.common.log_buffer import BufferedStreamHandler

if TYPE_CHECKING:
    from llmesh.services.common.telemetry_settings import LogSettings

__all__ = [
    "FORMATS",
    "LEVELS",
    "JsonFormatter",
    "apply_service_levels",
    "configure_logging",
    "log_format",
]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The values ``LLMESH_LOG_LEVEL`` takes (any case); INFO when unset."""

FORMATS = ("json", "text")
"""The values ``LLMESH_LOG_FORMAT`` takes; unset: json unless stderr is a terminal."""

BATCHED = frozenset({"llmesh.calls"})
"""Loggers whose INFO records are written in batches: the call log (a line per call)."""

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


_second: tuple[int, str] = (-1, "")
"""The last whole second `iso_milliseconds` wrote, and its text up to the seconds."""


def iso_milliseconds(created: float) -> str:
    """`created` (``time.time()``) as ``datetime.fromtimestamp(created, UTC).isoformat(
    timespec="milliseconds")`` writes it, with the text of the whole second kept between
    calls (records come many a second)."""
    global _second
    if created < 0:  # before 1970: let datetime do it (never seen in a record)
        return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    second = int(created)
    micros = round((created - second) * 1e6)  # rounded as `fromtimestamp` rounds
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    known, prefix = _second
    if second != known:
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (second, prefix)
    return f"{prefix}.{micros // 1000:03d}+00:00"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the structured fields."""

    def call_line(
        self, created: float, logger: str, message: str, fields: Mapping[str, Any]
    ) -> str:
        """What `format` writes for an INFO record of `logger` made at `created` whose
        message is `message` and whose only structured field is ``call=fields`` (the call
        log's), without a `logging.LogRecord`."""
        out: dict[str, Any] = {
            "ts": iso_milliseconds(created),
            "level": "INFO",
            "logger": logger,
            "message": message,
        }
        out.update(fields)
        return orjson.dumps(out, default=str).decode()

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": iso_milliseconds(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        # the keys a record's `extra` added, in the record's order (most records add none,
        # the call log's one): found in C, not by testing each of the two dozen standard ones
        extra = fields.keys() - _STANDARD
        for key in extra if len(extra) < 2 else [k for k in fields if k in extra]:
            if key.startswith("_"):
                continue
            value = fields[key]
            if key == "call" and isinstance(value, Mapping):
                out.update(value)
            else:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def _level(raw: str, var: str) -> str:
    level = raw.strip().upper()
    if level not in LEVELS:
        raise SystemExit(f"llmesh: {var}={raw!r} is not one of {', '.join(LEVELS)}")
    return level


def log_format(environ: Mapping[str, str], stream: TextIO) -> str:
    """``json`` or ``text`` for `stream`: ``LLMESH_LOG_FORMAT``, else by whether it is a tty."""
    raw = environ.get("LLMESH_LOG_FORMAT", "").strip().lower()
    if raw:
        if raw not in FORMATS:
            raise SystemExit(f"llmesh: LLMESH_LOG_FORMAT={raw!r} is not one of json, text")
        return raw
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure_logging(
    environ: Mapping[str, str] | None = None,
    *,
    default: str = "INFO",
    stream: TextIO | None = None,
) -> None:
    """Log to `stream` (stderr) at ``LLMESH_LOG_LEVEL`` (else `default`) in the chosen format;
    a bad level or format exits in one line."""
    env = os.environ if environ is None else environ
    raw = env.get("LLMESH_LOG_LEVEL", default)
    level = _level(raw or default, "LLMESH_LOG_LEVEL") if raw.strip() else default
    out = sys.stderr if stream is None else stream
    handler = BufferedStreamHandler(out, batched=BATCHED)
    if log_format(env, out) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def apply_service_levels(
    logs: LogSettings, service: str, environ: Mapping[str, str] | None = None
) -> None:
    """Set the root level of `service` from the environment, else the configuration's
    ``telemetry.logs`` (see the module docstring)."""
    env = os.environ if environ is None else environ
    var = f"LLMESH_{service.upper()}_LOG_LEVEL"
    if env.get(var, "").strip():
        logging.getLogger().setLevel(_level(env[var], var))
        return
    if env.get("LLMESH_LOG_LEVEL", "").strip():
        return  # configure_logging applied it
    if logs.levels.get(service):
        key, raw = f"telemetry.logs.levels.{service}", logs.levels[service]
    elif logs.level:
        key, raw = "telemetry.logs.level", logs.level
    else:
        return
    logging.getLogger().setLevel(_level(raw, key))
