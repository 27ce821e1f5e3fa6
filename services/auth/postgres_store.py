"""The shared key store: PostgreSQL through an asyncpg pool.

Several servers (and the CLI) can share one database. A revoke sends a ``NOTIFY`` in the
same transaction; every open store ``LISTEN``s on a dedicated connection and drops the key
from its cache as soon as the revoke commits. Should that connection drop, the cache TTL
still bounds how long a revoked key keeps working.
"""

from __future__ import annotations

import builtins
import logging
import secrets
from datetime import datetime
from typing import Any

import asyncpg

from llmesh.services.auth.keys import KeyInfo, is_key_id
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
    redact_url,
)

log = logging.getLogger(__name__)

REVOKE_CHANNEL = "llmesh_api_key_revoked"
"""The ``NOTIFY`` channel carrying the id of each revoked key."""

_MIGRATION_LOCK = 0x6C6C6D657368  # "llmesh": serializes schema creation across processes

_SCHEMA = [
    """CREATE TABLE llmesh_auth_meta (
        name  TEXT PRIMARY KEY,
        value BYTEA NOT NULL
    )""",
    """CREATE TABLE llmesh_api_keys (
        key_id      TEXT PRIMARY KEY,
        tenant      TEXT NOT NULL,
        name        TEXT NOT NULL DEFAULT '',
        secret_hash BYTEA NOT NULL,
        created_at  TIMESTAMPTZ NOT NULL,
        revoked_at  TIMESTAMPTZ
    )""",
    "CREATE INDEX llmesh_api_keys_tenant ON llmesh_api_keys (tenant, created_at)",
]


def _row(row: Any) -> StoredKey:
    info = KeyInfo(
        row["key_id"],
        row["tenant"],
        row["name"],
        row["created_at"],
        row["revoked_at"],
        default_priority=priority_of(row["default_priority"]),
        max_priority=priority_of(row["max_priority"]),
    )
    return StoredKey(info, bytes(row["secret_hash"]))


async def _migrate(conn: Any) -> bytes:
    """Create or check the tables; return the pepper."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS llmesh_schema_version (version INTEGER NOT NULL)"
        )
        found = await conn.fetchval("SELECT max(version) FROM llmesh_schema_version")
        if found is not None and found > SCHEMA_VERSION:
            raise RuntimeError(
                f"the key store has schema version {found}; this llmesh understands up to "
                f"{SCHEMA_VERSION}: upgrade llmesh"
            )
        if found is None:
            for statement in _SCHEMA:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO llmesh_auth_meta (name, value) VALUES ('pepper', $1)",
                secrets.token_bytes(32),
            )
        if found is None or found < SCHEMA_VERSION:
            for version in range((found or 1) + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    await conn.execute(statement)
            await conn.execute(
                "INSERT INTO llmesh_schema_version (version) VALUES ($1)", SCHEMA_VERSION
            )
        pepper = await conn.fetchval("SELECT value FROM llmesh_auth_meta WHERE name = 'pepper'")
    if pepper is None:
        raise RuntimeError("the key store has no pepper: its tables are damaged")
    return bytes(pepper)


class PostgresKeyStore(KeyStore):
    """Keys in a PostgreSQL database shared by every server."""

    def __init__(
        self,
        url: str,
        pool: Any,
        listener: Any,
        pepper: bytes,
        *,
        cache_ttl: float,
        cache_size: int,
    ) -> None:
        super().__init__(pepper, cache_ttl=cache_ttl, cache_size=cache_size)
        self._url = redact_url(url)
        self._pool = pool
        self._listener = listener

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> PostgresKeyStore:
        """Connect, create the tables when missing, and start listening for revocations."""
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        listener = None
        try:
            async with pool.acquire() as conn:
                pepper = await _migrate(conn)
            listener = await asyncpg.connect(url)
            store = cls(url, pool, listener, pepper, cache_ttl=cache_ttl, cache_size=cache_size)
            await listener.add_listener(REVOKE_CHANNEL, store._on_revoked)
            listener.add_termination_listener(store._on_listener_lost)
        except BaseException:
            if listener is not None:
                await listener.close()
            await pool.close()
            raise
        return store

    def describe(self) -> str:
        return self._url

    def _on_revoked(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if is_key_id(payload):
            self.invalidate(payload)

    def _on_listener_lost(self, _conn: Any) -> None:
        if self._listener is not None:
            log.warning(
                "lost the revocation listener of %s; revokes by other processes now take "
                "effect when cached keys expire",
                self._url,
            )

    async def _insert(self, row: StoredKey) -> None:
        info = row.info
        await self._pool.execute(
            "INSERT INTO llmesh_api_keys (key_id, tenant, name, secret_hash, created_at,"
            " default_priority, max_priority) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            info.key_id,
            info.tenant,
            info.name,
            row.secret_hash,
            info.created_at,
            priority_column(info.default_priority),
            priority_column(info.max_priority),
        )

    async def _select(self, tenant: str | None) -> builtins.list[KeyInfo]:
        order = "ORDER BY created_at, key_id"
        if tenant is None:
            rows = await self._pool.fetch(f"SELECT {KEY_COLUMNS} FROM llmesh_api_keys {order}")
        else:
            rows = await self._pool.fetch(
                f"SELECT {KEY_COLUMNS} FROM llmesh_api_keys WHERE tenant = $1 {order}", tenant
            )
        return [_row(r).info for r in rows]

    async def _mark_revoked(self, key_id: str, at: datetime) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                "UPDATE llmesh_api_keys SET revoked_at = $2 "
                "WHERE key_id = $1 AND revoked_at IS NULL RETURNING key_id",
                key_id,
                at,
            )
            if found is None:
                return False
            await conn.execute("SELECT pg_notify($1, $2)", REVOKE_CHANNEL, key_id)
            return True

    async def _lookup(self, key_id: str) -> StoredKey | None:
        row = await self._pool.fetchrow(
            f"SELECT {KEY_COLUMNS} FROM llmesh_api_keys WHERE key_id = $1", key_id
        )
        return None if row is None else _row(row)

    async def _count(self) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM llmesh_api_keys"))

    async def _close(self) -> None:
        listener, self._listener = self._listener, None
        try:
            if listener is not None:
                await listener.close()
        finally:
            await self._pool.close()
