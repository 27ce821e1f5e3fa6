"""Per-version statistics of a template, from the ledger's call rows.

Aggregated in the database, whatever the number of calls: one grouped query gives each
version's calls, errors (errored or cancelled), tokens, cost and mean duration and time to
first token (over the calls that had one); then a median query per version and measure reads
the middle one or two values in index order (`median_sql`, the same SQL in SQLite and
PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from llmesh.services.ledger.schema import TABLE

__all__ = [
    "MEASURES",
    "StatsQuery",
    "VersionStats",
    "median_sql",
    "sums_sql",
    "version_stats",
]

MEASURES = ("duration_ms", "ttft_ms")
"""The columns whose medians are reported."""


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


def _where(query: StatsQuery, placeholder: Callable[[int], str]) -> tuple[str, list[Any]]:
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
    return " AND ".join(where), params


def sums_sql(query: StatsQuery, placeholder: Callable[[int], str]) -> tuple[str, list[Any]]:
    """Per version: calls, errors, tokens, cost, mean duration, calls with a first token and
    their mean time to it; and the parameters. `placeholder(n)` spells the n-th."""
    where, params = _where(query, placeholder)
    sql = (
        "SELECT template_version, COUNT(*), SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), "
        "SUM(input_tokens), SUM(output_tokens), SUM(cost_usd), AVG(duration_ms), "
        f"COUNT(ttft_ms), AVG(ttft_ms) FROM {TABLE} WHERE {where} "
        "GROUP BY template_version ORDER BY template_version"
    )
    return sql, params


def median_sql(
    query: StatsQuery, column: str, version: int, count: int, placeholder: Callable[[int], str]
) -> tuple[str, list[Any]]:
    """The median of `column` (of `MEASURES`) over `count` non-null values of `version`."""
    if column not in MEASURES:
        raise ValueError(f"no median of {column!r}")
    where, params = _where(query, placeholder)
    params.append(version)
    where += f" AND template_version = {placeholder(len(params))} AND {column} IS NOT NULL"
    params += [2 - count % 2, (count - 1) // 2]
    limit, offset = placeholder(len(params) - 1), placeholder(len(params))
    sql = (
        f"SELECT AVG(v) FROM (SELECT {column} AS v FROM {TABLE} WHERE {where} "
        f"ORDER BY {column} LIMIT {limit} OFFSET {offset}) AS middle"
    )
    return sql, params


def version_stats(
    sums: Sequence[Sequence[Any]], medians: dict[tuple[int, str], float]
) -> list[VersionStats]:
    """Rows of `sums_sql` with the medians by (version, column), ascending by version."""
    out = []
    for version, calls, errors, inp, outp, cost, duration, _, ttft in sums:
        out.append(
            VersionStats(
                int(version),
                int(calls),
                int(errors or 0),
                int(inp or 0),
                int(outp or 0),
                float(cost or 0.0),
                medians.get((int(version), "duration_ms"), 0.0),
                float(duration or 0.0),
                medians.get((int(version), "ttft_ms"), 0.0),
                float(ttft or 0.0),
            )
        )
    return out
