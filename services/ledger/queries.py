"""Usage totals: one SQL aggregate shared by the stores, and the rows it yields.

A total counts `requests` (calls that reached a provider or the response cache, as
`llmesh.v1.UsageTotal` defines them) and `failed` calls (errored or cancelled, whether or
not they reached a provider), and sums tokens, cost and cache savings, both together and
apart: a response-cache hit's row saves what its reply first cost, any other row what its
prompt-cache reads saved. Groups are sorted
by their grouping fields in Python, so both stores order them identically whatever the
database's collation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "GROUPINGS",
    "UsageTotalRow",
    "normalize_group_by",
    "recent_query",
    "rows_to_totals",
    "totals_query",
    "utc_day",
]

GROUPINGS = ("tenant", "key", "model", "day")
"""The dimensions totals can be grouped by."""

_GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "tenant": ("tenant",),
    "key": ("key_id",),
    "model": ("provider", "model"),
    "day": ("day",),
}

_SUMS = (
    "SUM(CASE WHEN provider <> '' OR cache_hit THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END)",
    "SUM(input_tokens)",
    "SUM(output_tokens)",
    "SUM(cache_read_tokens)",
    "SUM(cache_write_tokens)",
    "SUM(reasoning_tokens)",
    "SUM(cost_usd)",
    "SUM(cache_savings_usd)",
    "SUM(CASE WHEN cache_hit THEN 0 ELSE cache_savings_usd END)",
    "SUM(CASE WHEN cache_hit THEN cache_savings_usd ELSE 0 END)",
)


@dataclass(frozen=True, slots=True)
class UsageTotalRow:
    """One group's totals; grouping fields not grouped by are empty."""

    tenant: str = ""
    """The tenant, when grouped by tenant."""
    key_id: str = ""
    """The API key id, when grouped by key."""
    model: str = ""
    """``provider/model``, when grouped by model (empty for calls that reached none)."""
    day: str = ""
    """The UTC day, ``YYYY-MM-DD``, when grouped by day."""
    requests: int = 0
    """Calls that reached a provider or the response cache."""
    failed: int = 0
    """Calls that errored or were cancelled."""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    cache_savings_usd: float = 0.0
    """Both savings below, together."""
    prompt_cache_savings_usd: float = 0.0
    """What reads from the providers' prompt caches saved against full input price."""
    response_cache_savings_usd: float = 0.0
    """What replies served from llmesh's response cache saved: their first call's cost."""

    def to_dict(self) -> dict[str, Any]:
        """The row as a JSON-ready dict."""
        return asdict(self)


def utc_day(ts: float) -> str:
    """The UTC date of a unix timestamp, ``YYYY-MM-DD``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def normalize_group_by(group_by: Sequence[str]) -> tuple[str, ...]:
    """Validate grouping names and drop repeats, keeping their order."""
    out: list[str] = []
    for g in group_by:
        if g not in GROUPINGS:
            raise ValueError(f"cannot group usage by {g!r}; choose from {', '.join(GROUPINGS)}")
        if g not in out:
            out.append(g)
    return tuple(out)


def totals_query(
    group_by: Sequence[str],
    since: float | None,
    until: float | None,
    tenant: str | None,
    placeholder: Callable[[int], str],
    table: str = "usage_records",
) -> tuple[str, list[Any]]:
    """The aggregate SQL and its parameters; `placeholder(n)` spells the n-th (from 1)."""
    columns = [c for g in normalize_group_by(group_by) for c in _GROUP_COLUMNS[g]]
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (("ts >= {}", since), ("ts < {}", until), ("tenant = {}", tenant)):
        if value is not None:
            params.append(value)
            where.append(clause.format(placeholder(len(params))))
    sql = f"SELECT {', '.join([*columns, *_SUMS])} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if columns:
        sql += " GROUP BY " + ", ".join(columns)
    return sql, params


def rows_to_totals(group_by: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[UsageTotalRow]:
    """Turn aggregate rows (grouping columns, then the sums) into sorted totals."""
    groups = normalize_group_by(group_by)
    out: list[UsageTotalRow] = []
    for row in rows:
        values = list(row)
        labels: dict[str, str] = {}
        for g in groups:
            if g == "model":
                provider, model = values.pop(0), values.pop(0)
                labels["model"] = f"{provider}/{model}" if provider else ""
            else:
                labels["key_id" if g == "key" else g] = values.pop(0)
        sums = [v if v is not None else 0 for v in values]
        out.append(
            UsageTotalRow(
                **labels,
                requests=int(sums[0]),
                failed=int(sums[1]),
                input_tokens=int(sums[2]),
                output_tokens=int(sums[3]),
                cache_read_tokens=int(sums[4]),
                cache_write_tokens=int(sums[5]),
                reasoning_tokens=int(sums[6]),
                cost_usd=float(sums[7]),
                cache_savings_usd=float(sums[8]),
                prompt_cache_savings_usd=float(sums[9]),
                response_cache_savings_usd=float(sums[10]),
            )
        )
    fields = ["key_id" if g == "key" else g for g in groups]
    out.sort(key=lambda r: tuple(getattr(r, f) for f in fields))
    return out


def recent_query(
    limit: int,
    tenant: str | None,
    placeholder: Callable[[int], str],
    columns: Sequence[str],
    table: str = "usage_records",
) -> tuple[str, list[Any]]:
    """The SQL of the latest `limit` records, newest first (of `tenant` only, when given),
    and its parameters; served by the ``(ts)`` and ``(tenant, ts)`` indexes."""
    params: list[Any] = []
    sql = f"SELECT {', '.join(columns)} FROM {table}"
    if tenant is not None:
        params.append(tenant)
        sql += f" WHERE tenant = {placeholder(len(params))}"
    params.append(int(limit))
    sql += f" ORDER BY ts DESC, request_id DESC LIMIT {placeholder(len(params))}"
    return sql, params
