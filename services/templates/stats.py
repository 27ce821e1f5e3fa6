"""Per-version statistics of a template, from the ledger's call rows.

The stores select the rows of one template (optionally a window and a tenant) and
`version_stats` folds them: calls, errors (errored or cancelled), tokens, cost, and the
median and mean of the call duration and of the time to first token (over the calls that
had one).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmesh.services.ledger.schema import TABLE

__all__ = ["StatsQuery", "VersionStats", "stats_sql", "version_stats"]


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """Which calls of a template count."""

    name: str
    since: float | None = None
    """Unix seconds; calls at or after."""
    until: float | None = None
    """Unix seconds; calls before."""
    tenant: str | None = None
    """Only this tenant's calls; None: every tenant."""


@dataclass(frozen=True, slots=True)
class VersionStats:
    """What the ledger holds of one version's calls."""

    version: int
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_p50_ms: float = 0.0
    latency_mean_ms: float = 0.0
    ttft_p50_ms: float = 0.0
    ttft_mean_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def stats_sql(query: StatsQuery, placeholder: Callable[[int], str]) -> tuple[str, list[Any]]:
    """The rows `version_stats` folds, and the parameters; `placeholder(n)` spells the n-th."""
    params: list[Any] = [query.name]
    where = [f"template = {placeholder(1)}"]
    for clause, value in (
        ("ts >= {}", query.since),
        ("ts < {}", query.until),
        ("tenant = {}", query.tenant),
    ):
        if value is not None:
            params.append(value)
            where.append(clause.format(placeholder(len(params))))
    sql = (
        "SELECT template_version, status, input_tokens, output_tokens, cost_usd, duration_ms, "
        f"ttft_ms FROM {TABLE} WHERE {' AND '.join(where)}"
    )
    return sql, params


@dataclass
class _Acc:
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    durations: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)


def version_stats(rows: Sequence[Sequence[Any]]) -> list[VersionStats]:
    """Rows of `stats_sql` folded per version, ascending."""
    acc: dict[int, _Acc] = {}
    for version, status, inp, out, cost, duration, ttft in rows:
        a = acc.setdefault(int(version), _Acc())
        a.calls += 1
        a.errors += status != "ok"
        a.input_tokens += int(inp or 0)
        a.output_tokens += int(out or 0)
        a.cost += float(cost or 0.0)
        a.durations.append(float(duration or 0.0))
        if ttft is not None:
            a.ttfts.append(float(ttft))

    def mid(values: list[float]) -> float:
        return float(statistics.median(values)) if values else 0.0

    def mean(values: list[float]) -> float:
        return float(statistics.fmean(values)) if values else 0.0

    return [
        VersionStats(
            v,
            a.calls,
            a.errors,
            a.input_tokens,
            a.output_tokens,
            a.cost,
            mid(a.durations),
            mean(a.durations),
            mid(a.ttfts),
            mean(a.ttfts),
        )
        for v, a in sorted(acc.items())
    ]
