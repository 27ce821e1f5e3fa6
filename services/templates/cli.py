"""``llmesh templates``: prompt templates in the ledger database, from the command line.

``list``, ``show NAME[@VERSION]``, ``create NAME --file F.yaml`` (a new version from a YAML
or JSON file; see `llmesh.services.templates.model` for its form), ``weights NAME
[VERSION=WEIGHT ...]`` (``--clear`` to go back to the latest) and ``stats NAME`` (per-version
calls, errors, tokens, cost, latency and time to first token from the ledger). Like ``llmesh
usage`` and ``llmesh keys``, it works on the database itself (``ledger.url``), as its
operator.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

from llmesh.services.common.errors import LlmeshError
from llmesh.services.ledger.cli import parse_time
from llmesh.services.templates.model import (
    TemplateVersion,
    not_found,
    parse_ref,
    version_from_mapping,
    version_to_mapping,
)
from llmesh.services.templates.render import check
from llmesh.services.templates.stats import StatsQuery, VersionStats
from llmesh.services.templates.store import TemplateStore, open_template_store

__all__ = ["templates_main", "templates_report"]

_STATS_HEADERS = (
    "version",
    "calls",
    "errors",
    "input",
    "output",
    "cost USD",
    "p50 ms",
    "mean ms",
    "ttft p50 ms",
    "ttft mean ms",
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmesh templates", description="prompt templates")
    sub = p.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="every template, its latest version and weights")
    listing.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one version (the latest unless NAME@VERSION)")
    show.add_argument("name", metavar="NAME[@VERSION]")
    show.add_argument("--json", action="store_true")
    create = sub.add_parser("create", help="store a new version from a YAML or JSON file")
    create.add_argument("name")
    create.add_argument("--file", required=True, type=Path)
    weights = sub.add_parser("weights", help="show or set the A/B weights")
    weights.add_argument("name")
    weights.add_argument("pairs", nargs="*", metavar="VERSION=WEIGHT")
    weights.add_argument("--clear", action="store_true", help="no weights: the latest serves")
    stats = sub.add_parser("stats", help="per-version statistics from the ledger")
    stats.add_argument("name")
    stats.add_argument("--since", help="7d, 24h, today, 2026-01-31 or an ISO time")
    stats.add_argument("--until", help="as --since")
    stats.add_argument("--tenant", help="only this tenant")
    stats.add_argument("--json", action="store_true")
    return p


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _weights(pairs: Sequence[tuple[int, float]]) -> str:
    return " ".join(f"{v}={w:g}" for v, w in pairs) or "-"


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in [header, *body]
    )


def _stats_row(s: VersionStats) -> list[str]:
    return [
        str(s.version),
        str(s.calls),
        str(s.errors),
        str(s.input_tokens),
        str(s.output_tokens),
        f"{s.cost_usd:.6f}",
        f"{s.latency_p50_ms:.1f}",
        f"{s.latency_mean_ms:.1f}",
        f"{s.ttft_p50_ms:.1f}",
        f"{s.ttft_mean_ms:.1f}",
    ]


def _show(version: TemplateVersion, versions: Sequence[int], weights: Any, as_json: bool) -> str:
    body = {"name": version.name, "version": version.version} | version_to_mapping(version)
    if as_json:
        body |= {"created_at": version.created_at, "versions": list(versions)}
        body["weights"] = [{"version": v, "weight": w} for v, w in weights]
        return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
    head = (
        f"# {version.ref} of versions {', '.join(map(str, versions))}, created "
        f"{_when(version.created_at)}; weights: {_weights(weights)}\n"
    )
    return head + yaml.safe_dump(body, sort_keys=False, allow_unicode=True).rstrip()


async def _run(store: TemplateStore, args: argparse.Namespace) -> str:
    if args.action == "list":
        rows = await store.summaries()
        if args.json:
            return orjson.dumps(
                [
                    {
                        "name": t.name,
                        "latest_version": t.latest_version,
                        "weights": [{"version": v, "weight": w} for v, w in t.weights],
                        "description": t.description,
                        "updated_at": t.updated_at,
                    }
                    for t in rows
                ],
                option=orjson.OPT_INDENT_2,
            ).decode()
        if not rows:
            return "no templates"
        body = [
            [t.name, str(t.latest_version), _weights(t.weights), _when(t.updated_at), t.description]
            for t in rows
        ]
        return _table(["name", "latest", "weights", "updated", "description"], body)
    ref = parse_ref(args.name, "NAME")
    if args.action == "show":
        version = await store.get(ref.name, ref.version)
        versions = await store.versions(ref.name)
        if version is None:
            raise not_found(ref.name, ref.version if versions else None)
        return _show(version, versions, await store.weights(ref.name), args.json)
    if ref.version is not None:
        raise ValueError(f"{args.name}: name the template without a version")
    if args.action == "create":
        raw = yaml.safe_load(args.file.read_text(encoding="utf-8"))
        version = version_from_mapping(raw, ref.name)
        check(version)
        stored = await store.create(version)
        return f"created {stored.ref}"
    if args.action == "weights":
        if args.pairs or args.clear:
            if args.pairs and args.clear:
                raise ValueError("give weights or --clear, not both")
            pairs = []
            for pair in args.pairs:
                version_text, eq, weight = pair.partition("=")
                try:
                    pairs.append((int(version_text), float(weight)))
                except ValueError:
                    raise ValueError(f"{pair!r} is not VERSION=WEIGHT") from None
                if not eq:
                    raise ValueError(f"{pair!r} is not VERSION=WEIGHT")
            return f"{ref.name}: {_weights(await store.set_weights(ref.name, pairs))}"
        if not await store.versions(ref.name):
            raise not_found(ref.name)
        return f"{ref.name}: {_weights(await store.weights(ref.name))}"
    if not await store.versions(ref.name):
        raise not_found(ref.name)
    query = StatsQuery(
        ref.name,
        parse_time(args.since) if args.since else None,
        parse_time(args.until) if args.until else None,
        args.tenant or None,
    )
    stats = await store.stats(query)
    if args.json:
        return orjson.dumps([s.to_dict() for s in stats], option=orjson.OPT_INDENT_2).decode()
    return _table(_STATS_HEADERS, [_stats_row(s) for s in stats])


async def templates_report(database_url: str, argv: Sequence[str]) -> str:
    """The output of ``llmesh templates ARGV`` on the database at `database_url`; raises
    `ValueError` or `LlmeshError` (INVALID_REQUEST, TEMPLATE_NOT_FOUND) on bad input."""
    args = _parser().parse_args(list(argv))
    store = open_template_store(database_url)
    try:
        return await _run(store, args)
    finally:
        await store.aclose()


def templates_main(database_url: str, argv: Sequence[str]) -> int | str:
    """Run ``llmesh templates ARGV``, printing its output: 0, or the message to exit with."""
    try:
        print(asyncio.run(templates_report(database_url, argv)))
    except LlmeshError as exc:
        return f"llmesh templates: {exc.message}"
    except (ValueError, OSError, yaml.YAMLError) as exc:
        return f"llmesh templates: {exc}"
    return 0
