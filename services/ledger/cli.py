"""``llmesh usage``: the ledger's totals as an aligned text table or JSON; ``llmesh ledger
close-interrupted``: close the calls a dead process left in flight, by hand."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from llmesh.services.ledger.queries import UsageTotalRow, normalize_group_by
from llmesh.services.ledger.recovery import close_interrupted
from llmesh.services.ledger.stores import open_store, sqlite_path

__all__ = [
    "add_ledger_parsers",
    "close_interrupted_report",
    "format_table",
    "ledger_main",
    "parse_time",
    "sum_totals",
    "usage_main",
    "usage_report",
]

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_GROUP_HEADERS = {"tenant": "tenant", "key": "key", "model": "model", "day": "day"}
_GROUP_FIELDS = {"tenant": "tenant", "key": "key_id", "model": "model", "day": "day"}
_NUMBER_HEADERS = (
    "requests",
    "failed",
    "input",
    "output",
    "cache read",
    "cache write",
    "cost USD",
    "cache savings USD",
)


def parse_time(text: str, *, now: float | None = None) -> float:
    """Unix seconds from ``7d`` / ``24h`` / ``30m`` / ``90s`` / ``2w`` ago, ``today`` (UTC),
    an ISO date (``2025-11-01``, UTC midnight) or an ISO date-time (UTC unless it says)."""
    now = time.time() if now is None else now
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        return now - float(m[1]) * _UNIT_SECONDS[m[2]]
    if text == "today":
        day = dt.datetime.fromtimestamp(now, dt.UTC).date()
        return dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read the time {text!r}: use e.g. 7d, 24h, today, 2025-11-01 "
            "or 2025-11-01T12:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def sum_totals(rows: Sequence[UsageTotalRow]) -> UsageTotalRow:
    """One row adding up all the others (grouping fields empty)."""
    return UsageTotalRow(
        requests=sum(r.requests for r in rows),
        failed=sum(r.failed for r in rows),
        input_tokens=sum(r.input_tokens for r in rows),
        output_tokens=sum(r.output_tokens for r in rows),
        cache_read_tokens=sum(r.cache_read_tokens for r in rows),
        cache_write_tokens=sum(r.cache_write_tokens for r in rows),
        reasoning_tokens=sum(r.reasoning_tokens for r in rows),
        cost_usd=math.fsum(r.cost_usd for r in rows),
        cache_savings_usd=math.fsum(r.cache_savings_usd for r in rows),
        prompt_cache_savings_usd=math.fsum(r.prompt_cache_savings_usd for r in rows),
        response_cache_savings_usd=math.fsum(r.response_cache_savings_usd for r in rows),
    )


def _numbers(r: UsageTotalRow) -> list[str]:
    return [
        f"{r.requests:,}",
        f"{r.failed:,}",
        f"{r.input_tokens:,}",
        f"{r.output_tokens:,}",
        f"{r.cache_read_tokens:,}",
        f"{r.cache_write_tokens:,}",
        f"{r.cost_usd:.6f}",
        f"{r.cache_savings_usd:.6f}",
    ]


def format_table(group_by: Sequence[str], rows: Sequence[UsageTotalRow]) -> str:
    """Totals as a text table: grouping columns left-aligned, numbers right-aligned.

    A ``total`` line follows when there is more than one group.
    """
    groups = normalize_group_by(group_by)
    header = [_GROUP_HEADERS[g] for g in groups] + list(_NUMBER_HEADERS)
    body = [[getattr(r, _GROUP_FIELDS[g]) or "-" for g in groups] + _numbers(r) for r in rows]
    footer: list[list[str]] = []
    if len(rows) > 1:
        label = ["total"] + [""] * (len(groups) - 1)
        footer = [label + _numbers(sum_totals(rows))]
    widths = [max(len(line[i]) for line in [header, *body, *footer]) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        out = [
            c.ljust(w) if i < len(groups) else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    lines = [render(header), "  ".join("-" * w for w in widths)]
    lines += [render(cells) for cells in body]
    if footer:
        lines.append("  ".join("-" * w for w in widths))
        lines += [render(cells) for cells in footer]
    if not rows:
        lines.append("(no usage recorded)")
    return "\n".join(lines)


def _json_row(row: UsageTotalRow, groups: Sequence[str]) -> dict[str, Any]:
    """A row's grouping fields (only those grouped by) and its numbers."""
    data = row.to_dict()
    hidden = {_GROUP_FIELDS[g] for g in _GROUP_FIELDS} - {_GROUP_FIELDS[g] for g in groups}
    return {k: v for k, v in data.items() if k not in hidden}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


async def _existing(store_url: str) -> None:
    path = sqlite_path(store_url)
    if path is not None and path != ":memory:" and not await asyncio.to_thread(Path(path).exists):
        raise FileNotFoundError(
            f"no usage ledger at {path}: nothing has been recorded there. The services create "
            "it on their first call; if they use another database, pass the same --config or "
            "LLMESH_DATABASE_URL."
        )


async def close_interrupted_report(store_url: str) -> str:
    """Close as ``interrupted`` the calls in flight of every process whose lease expired or
    that is gone from this machine (what an orchestrator does at start-up); a summary line."""
    await _existing(store_url)
    store = open_store(store_url)
    try:
        closed = await close_interrupted(store)
        left = await store.started_calls()
    finally:
        await store.aclose()
    return f"closed {closed} interrupted calls; {left} calls of live processes in flight"


async def usage_report(
    store_url: str,
    *,
    group_by: list[str],
    since: str | None,
    json_output: bool,
    tenant: str | None,
    until: str | None = None,
) -> str:
    """The ledger's totals since `since` (see `parse_time`), as a table or JSON text.

    Raises ValueError for an unknown grouping, an unreadable time or a bad URL, and
    FileNotFoundError for a SQLite ledger that does not exist (it is not created): an empty
    table there would hide that the services write somewhere else.
    """
    groups = list(normalize_group_by(group_by))
    start = parse_time(since) if since else None
    end = parse_time(until) if until else None
    await _existing(store_url)
    store = open_store(store_url)
    try:
        rows = await store.totals(groups, start, end, tenant)
    finally:
        await store.aclose()
    if not groups and rows and rows[0].requests == 0 and rows[0].failed == 0:
        rows = []  # the total of an empty ledger
    if not json_output:
        return format_table(groups, rows)
    doc: dict[str, Any] = {
        "group_by": groups,
        "since": _iso(start),
        "until": _iso(end),
        "tenant": tenant,
        "totals": [_json_row(r, groups) for r in rows],
        "total": _json_row(sum_totals(rows), []),
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()


def add_ledger_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``usage`` and ``ledger`` commands."""
    usage = sub.add_parser("usage", help="usage and cost totals from the ledger")
    usage.add_argument(
        "--by",
        default="tenant,model",
        help="comma-separated groups: tenant, key, model, day (default: tenant,model)",
    )
    usage.add_argument("--since", help="only records from this date (YYYY-MM-DD, UTC) on")
    usage.add_argument("--tenant", help="only this tenant")
    usage.add_argument("--json", action="store_true", help="JSON instead of a table")
    ledger = sub.add_parser("ledger", help="maintain the usage ledger")
    ledger_sub = ledger.add_subparsers(dest="action", required=True)
    ledger_sub.add_parser(
        "close-interrupted",
        help="close the calls in flight of stopped processes as interrupted "
        "(orchestrators do it at start-up)",
    )


def usage_main(store_url: str, args: argparse.Namespace) -> int | str:
    """Run ``llmesh usage`` with its parsed `args`, printing the report: 0, or the message
    to exit with."""
    try:
        report = asyncio.run(
            usage_report(
                store_url,
                group_by=[g.strip() for g in args.by.split(",") if g.strip()],
                since=args.since,
                json_output=args.json,
                tenant=args.tenant,
            )
        )
    except (ValueError, FileNotFoundError) as exc:
        return f"llmesh usage: {exc}"
    print(report)
    return 0


def ledger_main(store_url: str) -> int | str:
    """Run ``llmesh ledger close-interrupted``, printing its summary: 0, or the message to
    exit with."""
    try:
        print(asyncio.run(close_interrupted_report(store_url)))
    except (ValueError, FileNotFoundError) as exc:
        return f"llmesh ledger: {exc}"
    return 0
