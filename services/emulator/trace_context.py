"""The W3C trace context each generation request arrived with, readable over HTTP.

A mesh with tracing on sends ``traceparent`` (and ``tracestate`` / ``baggage`` when it has
them) on every upstream request; the emulator keeps the last `LIMIT` requests that carried
one, so a test can check the provider saw the same trace as the mesh's spans. It only reads
headers: the emulator shares no code with the mesh's telemetry.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

_HEADERS = ("traceparent", "tracestate", "baggage")

LIMIT = 256
"""How many requests' contexts are kept (the oldest are dropped first)."""


class ReceivedContexts:
    """The trace context headers of recent requests, oldest first."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: deque[dict[str, Any]] = deque(maxlen=LIMIT)

    def note(self, path: str, model: object, headers: Mapping[str, str]) -> None:
        """Keep the request's context headers, if it sent any."""
        if "traceparent" not in headers:
            return
        entry: dict[str, Any] = {"path": path, "model": model if isinstance(model, str) else None}
        for name in _HEADERS:
            value = headers.get(name)
            if value is not None:
                entry[name] = value
        self._seen.append(entry)

    def snapshot(self) -> list[dict[str, Any]]:
        """The kept entries as JSON-ready data."""
        return list(self._seen)

    def clear(self) -> None:
        """Forget every entry."""
        self._seen.clear()
