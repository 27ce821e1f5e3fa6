"""Logging for every entry point: one line format, the level from ``LLMESH_LOG_LEVEL``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

__all__ = ["LEVELS", "configure_logging"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The values ``LLMESH_LOG_LEVEL`` takes (any case); INFO when unset."""

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def configure_logging(environ: Mapping[str, str] | None = None, *, default: str = "INFO") -> None:
    """Log to stderr at ``LLMESH_LOG_LEVEL`` (else `default`); a bad level exits in one line."""
    raw = (os.environ if environ is None else environ).get("LLMESH_LOG_LEVEL", default)
    level = raw.strip().upper() or default
    if level not in LEVELS:
        raise SystemExit(f"llmesh: LLMESH_LOG_LEVEL={raw!r} is not one of {', '.join(LEVELS)}")
    logging.basicConfig(level=level, format=FORMAT)
