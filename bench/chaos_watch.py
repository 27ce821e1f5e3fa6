"""What ``make soak-chaos`` watches besides its callers: each service's memory and open file
descriptors, the orchestrator's circuit breakers (its ``/metrics``), the emulator's counts,
and, at the end, the ledger."""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.system import rss_mib

__all__ = [
    "BreakerWatch",
    "LedgerCheck",
    "ProcSample",
    "check_ledger",
    "growth",
    "open_fds",
    "sample",
]

_STATE = re.compile(r"^llmesh_breaker_state\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def open_fds(pid: int) -> int | None:
    """How many file descriptors `pid` holds open, or None if it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One service's memory and descriptors at one moment of the run."""

    t_s: float
    service: str
    rss_mib: float | None
    fds: int | None


def sample(t_s: float, pids: dict[str, int]) -> list[ProcSample]:
    """A sample of every service in `pids` (name -> pid)."""
    return [ProcSample(t_s, name, rss_mib(pid), open_fds(pid)) for name, pid in pids.items()]


def growth(
    samples: list[ProcSample], service: str, what: str, window: float, *, peak: bool = False
) -> float | None:
    """Percent growth of `what` (``rss_mib`` or ``fds``) of `service` from its samples in the
    first `window` seconds to those in the last `window`: their means, or with `peak` their
    maxima (open descriptors swing with the calls in flight, up to the concurrency, so a
    mean depends on where the samples fell; a leak raises the peak as well)."""
    mine = [(s.t_s, getattr(s, what)) for s in samples if s.service == service]
    mine = [(t, v) for t, v in mine if v is not None]
    if len(mine) < 2:
        return None
    start, end = mine[0][0], mine[-1][0]
    first = [v for t, v in mine if t <= start + window]
    last = [v for t, v in mine if t >= end - window]
    if peak:
        base, now = max(first), max(last)
    else:
        base, now = sum(first) / len(first), sum(last) / len(last)
    return None if base == 0 else (now - base) / base * 100


@dataclass
class BreakerWatch:
    """The breaker states seen per target, in the order they were first seen after a change."""

    changes: dict[str, list[str]] = field(default_factory=dict)

    def read(self, exposition: str) -> None:
        """Read one ``/metrics`` page: each target's current state (the series at 1)."""
        for m in _STATE.finditer(exposition):
            if float(m["value"]) != 1:
                continue
            labels = dict(_LABEL.findall(m["labels"]))
            target = labels.get("llmesh_target", "")
            state = labels.get("llmesh_breaker_state", "")
            seen = self.changes.setdefault(target, [])
            if not seen or seen[-1] != state:
                seen.append(state)

    @property
    def opened(self) -> int:
        """Times a breaker was seen open."""
        return sum(states.count("open") for states in self.changes.values())

    @property
    def reclosed(self) -> int:
        """Times a breaker was seen closed after having been open."""
        total = 0
        for states in self.changes.values():
            was_open = False
            for s in states:
                if s == "open":
                    was_open = True
                elif s == "closed" and was_open:
                    total += 1
                    was_open = False
        return total


@dataclass(frozen=True)
class LedgerCheck:
    """The ledger against what the callers saw and what reached the upstream."""

    rows: int
    """Rows in ``usage_records``."""
    in_flight: int
    """Rows left in ``call_starts`` (calls in flight) after the run: should be 0."""
    attempts: int
    """Upstream attempts the rows list: should equal the emulator's request count."""
    upstream_requests: int
    """Requests the emulator received."""
    missing: list[str]
    """Request ids a caller saw reach a provider that have no row."""
    statuses: dict[str, int]
    """Rows by status."""

    @property
    def ok(self) -> bool:
        """Exactly one row per call that reached the upstream, none in flight."""
        return not self.missing and self.in_flight == 0 and self.attempts == self.upstream_requests

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "in_flight": self.in_flight,
            "attempts": self.attempts,
            "upstream_requests": self.upstream_requests,
            "missing": self.missing[:20],
            "missing_count": len(self.missing),
            "statuses": self.statuses,
            "ok": self.ok,
        }


def check_ledger(path: str, seen_ids: set[str], upstream_requests: int) -> LedgerCheck:
    """Read the SQLite ledger at `path` (after the services stopped)."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT request_id, status, attempts FROM usage_records").fetchall()
        in_flight = conn.execute("SELECT COUNT(*) FROM call_starts").fetchone()[0]
    finally:
        conn.close()
    ids = {r[0] for r in rows}
    statuses: dict[str, int] = {}
    attempts = 0
    for _, status, trail in rows:
        statuses[status] = statuses.get(status, 0) + 1
        attempts += len(orjson.loads(trail))
    return LedgerCheck(
        rows=len(rows),
        in_flight=int(in_flight),
        attempts=attempts,
        upstream_requests=upstream_requests,
        missing=sorted(seen_ids - ids),
        statuses=statuses,
    )
