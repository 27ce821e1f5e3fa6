"""Logging for every entry point: the level, the format (JSON or readable lines), per service.

The level is ``LLMESH_LOG_LEVEL`` (else INFO). A service started from a configuration file
(`apply_service_levels`) takes ``LLMESH_<SERVICE>_LOG_LEVEL``, else ``LLMESH_LOG_LEVEL``,
else ``telemetry.logs.levels.<service>``, else ``telemetry.logs.level``. The format is one
JSON object per line when stderr is not a terminal or ``LLMESH_LOG_FORMAT=json``, and a
readable line on a terminal or with ``LLMESH_LOG_FORMAT=text``. A JSON record carries the
record's structured fields (``extra=``): the call log's fields (its ``call`` mapping) at
the top level.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

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

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_"):
                continue
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
    handler = logging.StreamHandler(out)
    if log_format(env, out) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def apply_service_levels(
    section: Mapping[str, Any], service: str, environ: Mapping[str, str] | None = None
) -> None:
    """Set the root level of `service` from the environment, else the ``telemetry.logs``
    part of the configuration `section` (see the module docstring)."""
    env = os.environ if environ is None else environ
    var = f"LLMESH_{service.upper()}_LOG_LEVEL"
    if env.get(var, "").strip():
        logging.getLogger().setLevel(_level(env[var], var))
        return
    if env.get("LLMESH_LOG_LEVEL", "").strip():
        return  # configure_logging applied it
    logs = section.get("logs") or {}
    if not isinstance(logs, Mapping):
        raise SystemExit(f"llmesh: telemetry.logs: expected a mapping, got {logs!r}")
    levels = logs.get("levels") or {}
    if not isinstance(levels, Mapping):
        raise SystemExit(f"llmesh: telemetry.logs.levels: expected a mapping, got {levels!r}")
    if levels.get(service):
        key, raw = f"telemetry.logs.levels.{service}", str(levels[service])
    elif logs.get("level"):
        key, raw = "telemetry.logs.level", str(logs["level"])
    else:
        return
    logging.getLogger().setLevel(_level(raw, key))
