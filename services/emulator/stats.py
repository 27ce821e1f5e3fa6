"""Request counters, readable over HTTP so tests can prove what reached the upstream.

Every generation request (``POST /v1/chat/completions``, ``POST /v1/messages``) is counted
once when it arrives and once more when it ends, as exactly one of: ``completed`` (the whole
response was sent, whatever its status), ``disconnects`` (the client went away first: the
handler was cancelled, or a write found the connection closed) or ``aborted`` (a ``cut``
fault closed the connection on purpose). ``active`` is the number still in flight, so
``requests == completed + disconnects + aborted + active``. ``params`` counts the optional
sampling parameters valid requests carried (``presence_penalty``, ``service_tier=flex``, ...).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

_OUTCOMES = ("completed", "disconnects", "aborted")


@dataclass(slots=True)
class _Counts:
    requests: int = 0
    completed: int = 0
    disconnects: int = 0
    aborted: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "completed": self.completed,
            "disconnects": self.disconnects,
            "aborted": self.aborted,
        }


@dataclass(slots=True)
class Stats:
    """Counters over all requests and per model."""

    total: _Counts = field(default_factory=_Counts)
    active: int = 0
    by_model: dict[str, _Counts] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)

    def saw(self, params: tuple[str, ...]) -> None:
        """Count the optional sampling parameters of one valid request."""
        for name in params:
            self.params[name] = self.params.get(name, 0) + 1

    def track(self, model: str | None) -> Tracker:
        """Count a request that starts now; use the result as a context manager."""
        return Tracker(self, model)

    def reset(self) -> None:
        """Zero every counter (requests still in flight stay counted as active)."""
        self.total = _Counts()
        self.by_model.clear()
        self.params.clear()

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready data."""
        out: dict[str, Any] = self.total.as_dict()
        out["active"] = self.active
        out["by_model"] = {m: c.as_dict() for m, c in self.by_model.items()}
        out["params"] = dict(self.params)
        return out

    def _counts(self, model: str | None) -> list[_Counts]:
        if model is None:
            return [self.total]
        per = self.by_model.get(model)
        if per is None:
            per = self.by_model[model] = _Counts()
        return [self.total, per]


class Tracker:
    """The life of one request: counts its start, and its outcome when the block exits.

    A `CancelledError` leaving the block means the client went away (aiohttp cancels the
    handler when the connection is lost), unless `aborting` was set because the emulator
    closed the connection itself.
    """

    __slots__ = ("_done", "_model", "_outcome", "_stats", "aborting")

    def __init__(self, stats: Stats, model: str | None) -> None:
        self._stats = stats
        self._model = model if isinstance(model, str) else None
        self._outcome = "completed"
        self._done = False
        self.aborting = False

    def disconnected(self) -> None:
        """Record that a write found the connection closed."""
        self._outcome = "disconnects"

    def aborted(self) -> None:
        """Record that the emulator closed the connection on purpose."""
        self._outcome = "aborted"
        self.aborting = True

    def __enter__(self) -> Tracker:
        for c in self._stats._counts(self._model):
            c.requests += 1
        self._stats.active += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done:
            return
        self._done = True
        outcome = self._outcome
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError | ConnectionError):
            outcome = "aborted" if self.aborting else "disconnects"
        assert outcome in _OUTCOMES
        for c in self._stats._counts(self._model):
            setattr(c, outcome, getattr(c, outcome) + 1)
        self._stats.active -= 1
