"""The shared ledger: PostgreSQL through an asyncpg connection pool.

Same tables and migrations as the SQLite store (JSON columns are JSONB). Migrations run in
one transaction under an advisory lock, so processes starting together migrate once.
PostgreSQL rejects NUL characters in text, so they are removed from every string written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator, Sequence
from typing import Any

import asyncpg
import orjson

from llmesh.services.ledger.instances import (
    Instance,
    InstanceRow,
    close_statements,
    heartbeat_sql,
    start_upsert_sql,
)
from llmesh.services.ledger.queries import (
    UsageTotalRow,
    recent_query,
    rows_to_totals,
    totals_query,
)
from llmesh.services.ledger.records import UsageRecord
from llmesh.services.ledger.responses import (
    StoredResponse,
    delete_sql,
    prune_sql,
    put_sql,
    select_sql,
    stored_from_row,
    stored_to_row,
)
from llmesh.services.ledger.schema import (
    COLUMNS,
    INSTANCES_TABLE,
    STARTS_TABLE,
    TABLE,
    dumps,
    pending,
    record_from_row,
    record_to_row,
    upsert_sql,
)

__all__ = ["PostgresStore", "close_pool", "migrate_postgres", "open_migrated_pool"]

_UPSERT = upsert_sql([f"${i}" for i in range(1, len(COLUMNS) + 1)])
_START_UPSERT = start_upsert_sql([f"${i}" for i in range(1, len(COLUMNS) + 2)])
_END = f"DELETE FROM {STARTS_TABLE} WHERE request_id = ANY($1::text[])"
_NOW = "EXTRACT(EPOCH FROM now())::double precision"
"""The server's clock: replicas on several hosts compare leases on one clock."""
_HEARTBEAT = heartbeat_sql(["$1", "$2", "$3", "$4", "$5", "$6::double precision"], _NOW)
_CLOSE = close_statements("$1", _NOW, returning=True)
_JSON_COLUMNS = frozenset(i for i, c in enumerate(COLUMNS) if c in ("attempts", "metadata"))
_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)"""


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def close_pool(pool: asyncpg.Pool, timeout: float = 5.0) -> None:
    """Close `pool`, waiting at most `timeout` seconds for its connections to come back;
    past that (a query stuck, a task that never released its connection) they are cut, so
    a shutdown never hangs on the database."""
    try:
        await asyncio.wait_for(pool.close(), timeout)
    except TimeoutError:
        pool.terminate()


async def open_migrated_pool(
    url: str, schema: str | None = None, *, min_size: int = 1, max_size: int = 4
) -> asyncpg.Pool:
    """A connection pool on `url` (its search path `schema` when named) with the ledger
    database migrated to the latest schema; the pool is closed again if migrating fails.
    The stores that keep their tables in the ledger database (usage, templates, batches)
    open their pools with it."""
    settings = {"search_path": _quote_ident(schema)} if schema else None
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, server_settings=settings
    )
    try:
        async with pool.acquire() as conn:
            await migrate_postgres(conn, schema)
    except BaseException:
        await pool.close()
        raise
    return pool


async def migrate_postgres(
    conn: asyncpg.Connection, schema: str | None = None, target: int | None = None
) -> int:
    """Create `schema` if named, apply the pending migrations (up to `target`); the version.

    Tables go to the connection's search path; set it to `schema` when naming one.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"llmesh-ledger:{schema}")
        if schema:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(schema)}")
        await conn.execute(_VERSION_TABLE)
        current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
        for m in pending(current):
            if target is not None and m.version > target:
                break
            for statement in m.sql("JSONB"):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)",
                m.version,
                m.description,
                time.time(),
            )
            current = m.version
    return current


def _clean(value: Any) -> Any:
    """Remove NUL characters, which PostgreSQL text and JSONB cannot hold."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def _pg_row(rec: UsageRecord) -> tuple[Any, ...]:
    row = list(record_to_row(rec))
    for i, value in enumerate(row):
        if i in _JSON_COLUMNS and "\\u0000" in value:
            row[i] = dumps(_clean(orjson.loads(value)))
        elif isinstance(value, str) and "\x00" in value:
            row[i] = _clean(value)
    return tuple(row)


def _affected(status: str) -> int:
    """The row count of a command status such as ``DELETE 3``."""
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else 0


class PostgresStore:
    """A `LedgerStore` in PostgreSQL; `schema` keeps its tables apart (default: search path)."""

    def __init__(
        self, url: str, *, schema: str | None = None, min_size: int = 1, max_size: int = 4
    ) -> None:
        self.url = url
        """The ``postgresql://`` connection URL."""
        self.schema = schema
        """The schema holding the ledger's tables, or None for the server's search path."""
        self._min_size, self._max_size = min_size, max_size
        self._pool: asyncpg.Pool | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False

    def __await__(self) -> Generator[Any, None, PostgresStore]:
        """``await store`` opens it now rather than on first use, and returns it."""
        return self._opened().__await__()

    async def _opened(self) -> PostgresStore:
        await self.open()
        return self

    async def open(self) -> None:
        """Connect and migrate to the latest schema (done on first use)."""
        if self._pool is not None:
            return
        if self._closed:
            raise RuntimeError("the usage ledger store is closed")
        async with self._open_lock:
            if self._pool is not None:
                return
            self._pool = await open_migrated_pool(
                self.url, self.schema, min_size=self._min_size, max_size=self._max_size
            )

    async def _ready_pool(self) -> asyncpg.Pool:
        await self.open()
        assert self._pool is not None
        return self._pool

    async def write(
        self,
        records: Sequence[UsageRecord],
        starts: Sequence[UsageRecord] = (),
        *,
        owner: str = "",
        ended: Sequence[str] = (),
    ) -> None:
        """In one transaction: record `starts` as calls in flight of instance `owner`, insert
        the final `records` (a repeated request_id replaces its row), and delete the start
        rows of the calls `ended` names."""
        if not records and not starts and not ended:
            return
        pool = await self._ready_pool()
        async with pool.acquire() as conn, conn.transaction():
            if starts:
                await conn.executemany(_START_UPSERT, [(*_pg_row(r), owner) for r in starts])
            if records:
                await conn.executemany(_UPSERT, [_pg_row(r) for r in records])
            if ended:
                await conn.execute(_END, list(ended))

    async def heartbeat(self, instance: Instance, lease: float) -> None:
        """Register `instance` or renew its lease for `lease` seconds (on the server's clock)."""
        pool = await self._ready_pool()
        await pool.execute(
            _HEARTBEAT,
            instance.instance_id,
            instance.host,
            instance.node,
            instance.pid,
            instance.started_at,
            lease,
        )

    async def retire(self, instance_id: str) -> None:
        """Forget an instance that stops (its unfinished calls become another's to close)."""
        pool = await self._ready_pool()
        await pool.execute(f"DELETE FROM {INSTANCES_TABLE} WHERE instance_id = $1", instance_id)

    async def instances(self) -> list[InstanceRow]:
        """Every registered instance."""
        pool = await self._ready_pool()
        rows = await pool.fetch(f"SELECT instance_id, node, pid FROM {INSTANCES_TABLE}")
        return [InstanceRow(r[0], r[1], int(r[2])) for r in rows]

    async def close_interrupted(self, me: str, dead: Sequence[str] = ()) -> int:
        """Close the started calls of every instance but `me` whose lease expired or that
        `dead` names, as rows of their own; how many calls were closed."""
        pool = await self._ready_pool()
        async with pool.acquire() as conn, conn.transaction():
            if dead:
                await conn.execute(
                    f"UPDATE {INSTANCES_TABLE} SET lease_until = 0 "
                    "WHERE instance_id = ANY($1::text[])",
                    list(dead),
                )
            closed = _affected(await conn.execute(_CLOSE[0], me))
            await conn.execute(_CLOSE[1], me)
        return closed

    async def started_calls(self) -> int:
        """How many calls are in flight (started, not yet finished or closed)."""
        pool = await self._ready_pool()
        return int(await pool.fetchval(f"SELECT COUNT(*) FROM {STARTS_TABLE}"))

    async def totals(
        self,
        group_by: Sequence[str],
        since: float | None = None,
        until: float | None = None,
        tenant: str | None = None,
    ) -> list[UsageTotalRow]:
        """Usage totals grouped by `group_by`, sorted (see `llmesh.services.ledger.queries`)."""
        sql, params = totals_query(group_by, since, until, tenant, lambda n: f"${n}")
        pool = await self._ready_pool()
        rows = await pool.fetch(sql, *params)
        return rows_to_totals(group_by, [tuple(r) for r in rows])

    async def recent(self, limit: int, tenant: str | None = None) -> list[UsageRecord]:
        """The latest `limit` records, newest first; `tenant` keeps only that tenant's."""
        sql, params = recent_query(limit, tenant, lambda n: f"${n}", COLUMNS, TABLE)
        pool = await self._ready_pool()
        rows = await pool.fetch(sql, *params)
        return [record_from_row(tuple(r)) for r in rows]

    async def count(self) -> int:
        """How many calls the ledger holds."""
        pool = await self._ready_pool()
        return int(await pool.fetchval(f"SELECT COUNT(*) FROM {TABLE}"))

    async def get(self, request_id: str) -> UsageRecord | None:
        """The record of one call, or None."""
        pool = await self._ready_pool()
        sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE request_id = $1"
        row = await pool.fetchrow(sql, request_id)
        return record_from_row(tuple(row)) if row is not None else None

    async def put_response(self, stored: StoredResponse) -> None:
        """Store a response, replacing a row with the same id (NULs removed from the body)."""
        row = list(stored_to_row(stored))
        if "\\u0000" in row[4]:
            row[4] = dumps(_clean(orjson.loads(row[4])))
        pool = await self._ready_pool()
        await pool.execute(put_sql(["$1", "$2", "$3", "$4", "$5"]), *row)

    async def get_response(
        self, response_id: str, tenant: str, now: float
    ) -> StoredResponse | None:
        """The live response `response_id` of `tenant`, or None."""
        pool = await self._ready_pool()
        row = await pool.fetchrow(select_sql(["$1", "$2", "$3"]), response_id, tenant, now)
        return stored_from_row(tuple(row)) if row is not None else None

    async def delete_response(self, response_id: str, tenant: str) -> bool:
        """Delete the response `response_id` of `tenant`; whether it existed."""
        pool = await self._ready_pool()
        status = await pool.execute(delete_sql(["$1", "$2"]), response_id, tenant)
        return _affected(status) > 0

    async def prune_responses(self, now: float) -> int:
        """Delete the responses expired at `now`; how many went."""
        pool = await self._ready_pool()
        return _affected(await pool.execute(prune_sql("$1"), now))

    async def aclose(self) -> None:
        """Close the pool (idempotent)."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await close_pool(pool)
