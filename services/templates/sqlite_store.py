"""Templates in the SQLite ledger file, on a connection and thread of their own.

The file is the ledger's (WAL mode: the ledger writer, the CLI and this store share it);
opening runs the ledger's migrations, so the tables exist whichever opens first. A new
version's number is taken inside ``BEGIN IMMEDIATE``, so concurrent creates never collide.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from llmesh.services.common.sqlite import enable_wal
from llmesh.services.ledger.schema import (
    TEMPLATE_VERSIONS_TABLE,
    TEMPLATE_WEIGHTS_TABLE,
    TEMPLATES_TABLE,
)
from llmesh.services.ledger.sqlite_store import migrate_sqlite
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

__all__ = ["SqliteTemplateStore"]

_T = TypeVar("_T")
_VERSION = f"SELECT version, created_at, body FROM {TEMPLATE_VERSIONS_TABLE} WHERE name = ?"
_LIST = f"""SELECT v.name, v.version, v.description, v.created_at FROM {TEMPLATE_VERSIONS_TABLE} v
    WHERE v.version = (SELECT MAX(version) FROM {TEMPLATE_VERSIONS_TABLE} w WHERE w.name = v.name)
    ORDER BY v.name"""


class SqliteTemplateStore:
    """A `TemplateStore` in a SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = str(path)
        """The ledger's database file."""
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmesh-templates")
        self._conn: sqlite3.Connection | None = None  # used only on the executor's thread
        self._closed = False

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._closed:
            raise RuntimeError("the template store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._run, fn, *args))

    def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
            try:
                enable_wal(conn, self._busy_timeout)
                migrate_sqlite(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return fn(self._conn, *args)

    async def create(self, version: TemplateVersion) -> TemplateVersion:
        """Store `version` as the template's next version."""
        return await self._call(_create, version)

    async def get(self, name: str, version: int | None = None) -> TemplateVersion | None:
        """One version (the latest when `version` is None), or None."""
        params: list[Any] = [name]
        if version is None:
            sql = f"{_VERSION} ORDER BY version DESC LIMIT 1"
        else:
            sql = f"{_VERSION} AND version = ?"
            params.append(version)
        rows = await self._call(_fetch, sql, params)
        return (
            version_from_row(name, int(rows[0][0]), float(rows[0][1]), rows[0][2]) if rows else None
        )

    async def versions(self, name: str) -> list[int]:
        """The template's version numbers, ascending."""
        sql = f"SELECT version FROM {TEMPLATE_VERSIONS_TABLE} WHERE name = ? ORDER BY version"
        return [int(r[0]) for r in await self._call(_fetch, sql, [name])]

    async def summaries(self) -> list[TemplateSummary]:
        """Every template, by name."""
        rows = await self._call(_fetch, _LIST, [])
        weights = await self._call(
            _fetch, f"SELECT name, version, weight FROM {TEMPLATE_WEIGHTS_TABLE} ORDER BY 1, 2", []
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
        sql = f"SELECT version, weight FROM {TEMPLATE_WEIGHTS_TABLE} WHERE name = ? ORDER BY 1"
        return [(int(v), float(w)) for v, w in await self._call(_fetch, sql, [name])]

    async def set_weights(
        self, name: str, weights: Sequence[tuple[int, float]]
    ) -> list[tuple[int, float]]:
        """Replace the template's weights, in one transaction."""
        return await self._call(_set_weights, name, list(weights))

    async def stats(self, query: StatsQuery) -> list[VersionStats]:
        """The template's calls per version."""
        return await self._call(_stats, query)

    async def aclose(self) -> None:
        """Close the connection and stop the thread (idempotent)."""
        if self._closed:
            return
        if self._conn is not None:
            await self._call(_close)
            self._conn = None
        self._closed = True
        self._executor.shutdown(wait=False)


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


def _stats(conn: sqlite3.Connection, query: StatsQuery) -> list[VersionStats]:
    conn.execute("BEGIN")  # one snapshot (WAL): the counts and the medians agree
    try:
        sql, params = sums_sql(query, lambda _: "?")
        sums = conn.execute(sql, params).fetchall()
        medians: dict[tuple[int, str], float] = {}
        for row in sums:
            for column, count in (("duration_ms", row[1]), ("ttft_ms", row[7])):
                if count:
                    sql, params = median_sql(query, column, int(row[0]), int(count), lambda _: "?")
                    medians[int(row[0]), column] = float(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.execute("COMMIT")
    return version_stats(sums, medians)


def _close(conn: sqlite3.Connection) -> None:
    conn.close()


def _create(conn: sqlite3.Connection, version: TemplateVersion) -> TemplateVersion:
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            f"INSERT INTO {TEMPLATES_TABLE} (name, created_at) VALUES (?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (version.name, now),
        )
        row = conn.execute(
            f"SELECT COALESCE(MAX(version), 0) + 1 FROM {TEMPLATE_VERSIONS_TABLE} WHERE name = ?",
            (version.name,),
        ).fetchone()
        number = int(row[0])
        conn.execute(
            f"INSERT INTO {TEMPLATE_VERSIONS_TABLE} (name, version, created_at, description, body) "
            "VALUES (?, ?, ?, ?, ?)",
            (version.name, number, now, version.description, version_body(version)),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return version_from_row(version.name, number, now, version_body(version))


def _set_weights(
    conn: sqlite3.Connection, name: str, weights: list[tuple[int, float]]
) -> list[tuple[int, float]]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(
            f"SELECT version FROM {TEMPLATE_VERSIONS_TABLE} WHERE name = ?", (name,)
        ).fetchall()
        checked = check_weights(name, weights, [int(r[0]) for r in rows])
        conn.execute(f"DELETE FROM {TEMPLATE_WEIGHTS_TABLE} WHERE name = ?", (name,))
        conn.executemany(
            f"INSERT INTO {TEMPLATE_WEIGHTS_TABLE} (name, version, weight) VALUES (?, ?, ?)",
            [(name, v, w) for v, w in checked],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return checked
