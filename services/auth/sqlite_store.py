"""The embedded key store: one SQLite file in WAL mode, driven from a private thread.

The connection lives in a single-thread executor, so every query runs off the event loop
and queries never overlap. WAL lets the CLI write while servers read the same file.
"""

from __future__ import annotations

import asyncio
import builtins
import secrets
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from llmesh.services.auth.keys import KeyInfo
from llmesh.services.auth.store import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_CACHE_TTL,
    KEY_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    KeyStore,
    StoredKey,
    priority_column,
    priority_of,
)
from llmesh.services.common.sqlite import enable_wal

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS llmesh_auth_meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS llmesh_api_keys (
    key_id      TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    secret_hash BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX IF NOT EXISTS llmesh_api_keys_tenant ON llmesh_api_keys (tenant, created_at);
"""


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///PATH`` URL (four slashes for an absolute path)."""
    prefix = "sqlite:///"
    if not url.lower().startswith(prefix) or len(url) == len(prefix):
        raise ValueError("a SQLite key store URL reads sqlite:///PATH (sqlite:////abs/path.db)")
    return url[len(prefix) :]


def _row(row: tuple[Any, ...]) -> StoredKey:
    key_id, tenant, name, secret_hash, created_at, revoked_at, default, ceiling = row
    info = KeyInfo(
        key_id,
        tenant,
        name,
        datetime.fromisoformat(created_at),
        None if revoked_at is None else datetime.fromisoformat(revoked_at),
        default_priority=priority_of(default),
        max_priority=priority_of(ceiling),
    )
    return StoredKey(info, bytes(secret_hash))


def _connect(path: str) -> tuple[sqlite3.Connection, bytes]:
    """Open the file, create or check the tables, and read the pepper."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        enable_wal(conn, 5.0)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            pepper = _migrate(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn, pepper


def _migrate(conn: sqlite3.Connection) -> bytes:
    conn.execute("CREATE TABLE IF NOT EXISTS llmesh_schema_version (version INTEGER NOT NULL)")
    found = conn.execute("SELECT max(version) FROM llmesh_schema_version").fetchone()[0]
    if found is not None and found > SCHEMA_VERSION:
        raise RuntimeError(
            f"the key store has schema version {found}; this llmesh understands up to "
            f"{SCHEMA_VERSION}: upgrade llmesh"
        )
    if found is None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT INTO llmesh_auth_meta (name, value) VALUES ('pepper', ?)",
            (secrets.token_bytes(32),),
        )
    if found is None or found < SCHEMA_VERSION:
        for version in range((found or 1) + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
        conn.execute("INSERT INTO llmesh_schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
    row = conn.execute("SELECT value FROM llmesh_auth_meta WHERE name = 'pepper'").fetchone()
    if row is None:
        raise RuntimeError("the key store has no pepper: its tables are damaged")
    return bytes(row[0])


class SqliteKeyStore(KeyStore):
    """Keys in a local SQLite file (the embedded default)."""

    def __init__(
        self,
        path: str,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        pepper: bytes,
        *,
        cache_ttl: float,
        cache_size: int,
    ) -> None:
        super().__init__(pepper, cache_ttl=cache_ttl, cache_size=cache_size)
        self._path = path
        self._conn: sqlite3.Connection | None = conn
        self._executor = executor

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> SqliteKeyStore:
        """Open the store in ``path``, creating the file and its tables when missing."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmesh-keys")
        try:
            loop = asyncio.get_running_loop()
            conn, pepper = await loop.run_in_executor(executor, _connect, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, conn, executor, pepper, cache_ttl=cache_ttl, cache_size=cache_size)

    def describe(self) -> str:
        return f"sqlite:///{self._path}"

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the key store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, conn)

    async def _insert(self, row: StoredKey) -> None:
        info = row.info
        values = (
            info.key_id,
            info.tenant,
            info.name,
            row.secret_hash,
            info.created_at.isoformat(),
            priority_column(info.default_priority),
            priority_column(info.max_priority),
        )

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO llmesh_api_keys (key_id, tenant, name, secret_hash, created_at,"
                " default_priority, max_priority) VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )

        await self._run(insert)

    async def _select(self, tenant: str | None) -> builtins.list[KeyInfo]:
        def select(conn: sqlite3.Connection) -> builtins.list[tuple[Any, ...]]:
            if tenant is None:
                query = f"SELECT {KEY_COLUMNS} FROM llmesh_api_keys ORDER BY created_at, key_id"
                return conn.execute(query).fetchall()
            query = (
                f"SELECT {KEY_COLUMNS} FROM llmesh_api_keys WHERE tenant = ? "
                "ORDER BY created_at, key_id"
            )
            return conn.execute(query, (tenant,)).fetchall()

        return [_row(r).info for r in await self._run(select)]

    async def _mark_revoked(self, key_id: str, at: datetime) -> bool:
        def update(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE llmesh_api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (at.isoformat(), key_id),
            )
            return cur.rowcount > 0

        return await self._run(update)

    async def _lookup(self, key_id: str) -> StoredKey | None:
        def lookup(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            query = f"SELECT {KEY_COLUMNS} FROM llmesh_api_keys WHERE key_id = ?"
            result: tuple[Any, ...] | None = conn.execute(query, (key_id,)).fetchone()
            return result

        found = await self._run(lookup)
        return None if found is None else _row(found)

    async def _count(self) -> int:
        def count(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM llmesh_api_keys").fetchone()[0])

        return await self._run(count)

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        finally:
            self._executor.shutdown(wait=False)
