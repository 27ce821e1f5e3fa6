"""Templates in the PostgreSQL ledger, through an asyncpg pool of their own.

Opening runs the ledger's migrations (under their advisory lock); a new version's number is
taken with the template's row locked (``FOR UPDATE``), so concurrent creates never collide.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from llmesh.services.ledger.postgres_store import close_pool, open_migrated_pool
from llmesh.services.ledger.schema import (
    TEMPLATE_VERSIONS_TABLE,
    TEMPLATE_WEIGHTS_TABLE,
    TEMPLATES_TABLE,
)
from llmesh.services.templates.model import TemplateVersion
from llmesh.services.templates.stats import (
    StatsQuery,
    VersionStats,
    median_sql,
    sums_sql,
    version_stats,
)
from llmesh.services.templates.store import (
    TemplateSummary,
    check_weights,
    version_body,
    version_from_row,
)

__all__ = ["PostgresTemplateStore"]

_VERSION = f"SELECT version, created_at, body FROM {TEMPLATE_VERSIONS_TABLE} WHERE name = $1"
_LIST = f"""SELECT DISTINCT ON (name) name, version, description, created_at
    FROM {TEMPLATE_VERSIONS_TABLE} ORDER BY name, version DESC"""


class PostgresTemplateStore:
    """A `TemplateStore` in PostgreSQL; `schema` as the ledger's (default: search path)."""

    def __init__(self, url: str, *, schema: str | None = None, max_size: int = 2) -> None:
        self.url = url
        """The ``postgresql://`` connection URL."""
        self.schema = schema
        """The schema holding the ledger's tables, or None for the search path."""
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def _ready(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._closed:
            raise RuntimeError("the template store is closed")
        async with self._lock:
            if self._pool is None:
                self._pool = await open_migrated_pool(
                    self.url, self.schema, max_size=self._max_size
                )
        return self._pool

    async def create(self, version: TemplateVersion) -> TemplateVersion:
        """Store `version` as the template's next version."""
        pool = await self._ready()
        now = time.time()
        body = version_body(version)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO {TEMPLATES_TABLE} (name, created_at) VALUES ($1, $2) "
                "ON CONFLICT (name) DO NOTHING",
                version.name,
                now,
            )
            await conn.execute(
                f"SELECT name FROM {TEMPLATES_TABLE} WHERE name = $1 FOR UPDATE", version.name
            )
            number = int(
                await conn.fetchval(
                    f"SELECT COALESCE(MAX(version), 0) + 1 FROM {TEMPLATE_VERSIONS_TABLE} "
                    "WHERE name = $1",
                    version.name,
                )
            )
            await conn.execute(
                f"INSERT INTO {TEMPLATE_VERSIONS_TABLE} "
                "(name, version, created_at, description, body) VALUES ($1, $2, $3, $4, $5)",
                version.name,
                number,
                now,
                version.description,
                body,
            )
        return version_from_row(version.name, number, now, body)

    async def get(self, name: str, version: int | None = None) -> TemplateVersion | None:
        """One version (the latest when `version` is None), or None."""
        pool = await self._ready()
        if version is None:
            row = await pool.fetchrow(f"{_VERSION} ORDER BY version DESC LIMIT 1", name)
        else:
            row = await pool.fetchrow(f"{_VERSION} AND version = $2", name, version)
        return None if row is None else version_from_row(name, int(row[0]), float(row[1]), row[2])

    async def versions(self, name: str) -> list[int]:
        """The template's version numbers, ascending."""
        pool = await self._ready()
        sql = f"SELECT version FROM {TEMPLATE_VERSIONS_TABLE} WHERE name = $1 ORDER BY version"
        return [int(r[0]) for r in await pool.fetch(sql, name)]

    async def summaries(self) -> list[TemplateSummary]:
        """Every template, by name."""
        pool = await self._ready()
        rows = await pool.fetch(_LIST)
        weights = await pool.fetch(
            f"SELECT name, version, weight FROM {TEMPLATE_WEIGHTS_TABLE} ORDER BY 1, 2"
        )
        by_name: dict[str, list[tuple[int, float]]] = {}
        for n, v, w in weights:
            by_name.setdefault(n, []).append((int(v), float(w)))
        return [
            TemplateSummary(n, int(v), tuple(by_name.get(n, ())), d, float(t))
            for n, v, d, t in rows
        ]

    async def weights(self, name: str) -> list[tuple[int, float]]:
        """The template's (version, weight) pairs, by version."""
        pool = await self._ready()
        sql = f"SELECT version, weight FROM {TEMPLATE_WEIGHTS_TABLE} WHERE name = $1 ORDER BY 1"
        return [(int(v), float(w)) for v, w in await pool.fetch(sql, name)]

    async def set_weights(
        self, name: str, weights: Sequence[tuple[int, float]]
    ) -> list[tuple[int, float]]:
        """Replace the template's weights, in one transaction."""
        pool = await self._ready()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"SELECT name FROM {TEMPLATES_TABLE} WHERE name = $1 FOR UPDATE", name
            )
            rows = await conn.fetch(
                f"SELECT version FROM {TEMPLATE_VERSIONS_TABLE} WHERE name = $1", name
            )
            checked = check_weights(name, weights, [int(r[0]) for r in rows])
            await conn.execute(f"DELETE FROM {TEMPLATE_WEIGHTS_TABLE} WHERE name = $1", name)
            await conn.executemany(
                f"INSERT INTO {TEMPLATE_WEIGHTS_TABLE} (name, version, weight) VALUES ($1, $2, $3)",
                [(name, v, w) for v, w in checked],
            )
        return checked

    async def stats(self, query: StatsQuery) -> list[VersionStats]:
        """The template's calls per version."""
        pool = await self._ready()
        sql, params = sums_sql(query, lambda n: f"${n}")
        snapshot: dict[str, Any] = {"isolation": "repeatable_read", "readonly": True}
        async with pool.acquire() as conn, conn.transaction(**snapshot):
            sums = [tuple(r) for r in await conn.fetch(sql, *params)]
            medians: dict[tuple[int, str], float] = {}
            for row in sums:
                for column, count in (("duration_ms", row[1]), ("ttft_ms", row[7])):
                    if count:
                        sql, params = median_sql(
                            query, column, int(row[0]), int(count), lambda n: f"${n}"
                        )
                        medians[int(row[0]), column] = float(await conn.fetchval(sql, *params))
        return version_stats(sums, medians)

    async def aclose(self) -> None:
        """Close the pool (idempotent)."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await close_pool(pool)
