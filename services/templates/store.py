"""Where templates live: the ledger database (SQLite or PostgreSQL), in the tables of the
ledger's migration 7, beside the call rows their statistics come from.

`TemplateStore` is the interface both stores implement; `open_template_store` opens the
one a database URL names; `resolve` turns a call's `TemplateRef` into the version it
renders (pinned, weighted or latest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

from llmesh.services.common.errors import FieldViolation
from llmesh.services.ledger.stores import sqlite_path
from llmesh.services.templates.choose import pick_version, sticky_point
from llmesh.services.templates.model import (
    TemplateRef,
    TemplateVersion,
    invalid,
    not_found,
    version_from_mapping,
    version_to_mapping,
)
from llmesh.services.templates.stats import StatsQuery, VersionStats

__all__ = [
    "TemplateStore",
    "TemplateSummary",
    "check_weights",
    "open_template_store",
    "resolve",
    "version_body",
    "version_from_row",
]


@dataclass(frozen=True, slots=True)
class TemplateSummary:
    """A template in a listing."""

    name: str
    latest_version: int
    weights: tuple[tuple[int, float], ...]
    description: str
    """The latest version's."""
    updated_at: float
    """When the latest version was created, unix seconds."""


class TemplateStore(Protocol):
    """Templates, their immutable versions and weights, and their calls' statistics."""

    async def create(self, version: TemplateVersion) -> TemplateVersion:
        """Store `version` as the template's next version (the first creates the template);
        the stored version, with its number and creation time."""
        ...

    async def get(self, name: str, version: int | None = None) -> TemplateVersion | None:
        """One version (the latest when `version` is None), or None when absent."""
        ...

    async def versions(self, name: str) -> list[int]:
        """The template's version numbers, ascending (empty: no such template)."""
        ...

    async def summaries(self) -> list[TemplateSummary]:
        """Every template, by name."""
        ...

    async def weights(self, name: str) -> list[tuple[int, float]]:
        """The template's (version, weight) pairs, by version; empty: the latest serves."""
        ...

    async def set_weights(
        self, name: str, weights: Sequence[tuple[int, float]]
    ) -> list[tuple[int, float]]:
        """Replace the template's weights (empty clears them); TEMPLATE_NOT_FOUND for an
        unknown template, INVALID_REQUEST for an unknown version or a bad weight."""
        ...

    async def stats(self, query: StatsQuery) -> list[VersionStats]:
        """The template's calls per version, from the ledger."""
        ...

    async def aclose(self) -> None:
        """Release the connections (idempotent)."""
        ...


def version_body(version: TemplateVersion) -> str:
    """The JSON a version row stores."""
    return orjson.dumps(version_to_mapping(version)).decode()


def version_from_row(name: str, number: int, created_at: float, body: Any) -> TemplateVersion:
    """The version a row holds."""
    raw = orjson.loads(body) if isinstance(body, str | bytes) else body
    return replace(version_from_mapping(raw, name), version=number, created_at=created_at)


def check_weights(
    name: str, weights: Sequence[tuple[int, float]], versions: Sequence[int]
) -> list[tuple[int, float]]:
    """`weights` by version, validated against the template's `versions`."""
    if not versions:
        raise not_found(name)
    bad = []
    seen: set[int] = set()
    for i, (version, weight) in enumerate(weights):
        if version not in versions:
            bad.append(FieldViolation(f"weights[{i}].version", f"{name} has no version {version}"))
        if version in seen:
            bad.append(FieldViolation(f"weights[{i}].version", "listed twice"))
        seen.add(version)
        if not math.isfinite(weight) or weight <= 0:
            bad.append(FieldViolation(f"weights[{i}].weight", "a positive number"))
    if bad:
        raise invalid(bad)
    return sorted((int(v), float(w)) for v, w in weights)


async def resolve(
    store: TemplateStore, ref: TemplateRef, tenant: str = "", user: str = ""
) -> TemplateVersion:
    """The version a call naming `ref` renders: the pinned one, else one by the template's
    weights (sticky per `user` when one is named), else the latest; TEMPLATE_NOT_FOUND."""
    if ref.version is not None:
        pinned = await store.get(ref.name, ref.version)
        if pinned is None:
            known = await store.versions(ref.name)
            raise not_found(ref.name, ref.version if known else None)
        return pinned
    weights = await store.weights(ref.name)
    if weights:
        point = sticky_point(ref.name, tenant, user) if user else None
        chosen = await store.get(ref.name, pick_version(0, weights, point))
    else:
        chosen = await store.get(ref.name)
    if chosen is None:
        raise not_found(ref.name)
    return chosen


def open_template_store(url: str) -> TemplateStore:
    """The template store of the ledger database at `url` (``sqlite:///...`` or
    ``postgresql://...[?schema=name]``, as the ledger's); it connects and migrates on first
    use."""
    path = sqlite_path(url)
    if path is not None:
        from llmesh.services.templates.sqlite_store import SqliteTemplateStore

        return SqliteTemplateStore(path)
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    from llmesh.services.templates.postgres_store import PostgresTemplateStore

    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql://")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k in ("schema", "search_path")), None)
    rest = urlencode([(k, v) for k, v in query if k not in ("schema", "search_path")])
    return PostgresTemplateStore(urlunsplit(parts._replace(query=rest)), schema=schema or None)
