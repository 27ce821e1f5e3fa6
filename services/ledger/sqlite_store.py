"""The embedded ledger: one SQLite file, driven from one dedicated thread.

Every sqlite3 call runs on the store's own single-thread executor, so the event loop never
waits on the disk. The database is in WAL mode with ``synchronous=NORMAL``: a committed
batch survives the process being killed (only an OS crash or power loss can drop the last
transactions). Several llmesh processes may share one file: writers wait on each other
(``busy_timeout``) and migrations run inside ``BEGIN IMMEDIATE``, so they run once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from llmesh.services.common.sqlite import enable_wal
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
    pending,
    record_from_row,
    record_to_row,
    upsert_sql,
)

__all__ = ["SqliteStore", "migrate_sqlite", "sqlite_schema_version"]

_T = TypeVar("_T")
_UPSERT = upsert_sql(["?"] * len(COLUMNS))
_START_UPSERT = start_upsert_sql(["?"] * (len(COLUMNS) + 1))
_END = f"DELETE FROM {STARTS_TABLE} WHERE request_id = ?"
_HEARTBEAT = heartbeat_sql(["?"] * 6, "?")
_CLOSE = close_statements(":me", ":now", returning=False)
_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)"""


def sqlite_schema_version(conn: sqlite3.Connection) -> int:
    """The highest applied migration, 0 for a new database."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate_sqlite(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Apply the pending migrations (up to `target`) in one transaction; the new version.

    `conn` must be in autocommit mode (``isolation_level=None``).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_VERSION_TABLE)
        current = sqlite_schema_version(conn)
        for m in pending(current):
            if target is not None and m.version > target:
                break
            for statement in m.sql("TEXT"):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (m.version, m.description, time.time()),
            )
            current = m.version
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return current


class SqliteStore:
    """A `LedgerStore` in a SQLite file (``:memory:`` for a private in-memory one)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = str(path)
        """The database file."""
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmesh-ledger")
        self._conn: sqlite3.Connection | None = None  # used only on the executor's thread
        self._open_lock = asyncio.Lock()
        self._ready = False
        self._closed = False

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._closed:
            raise RuntimeError("the usage ledger store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args))

    def __await__(self) -> Generator[Any, None, SqliteStore]:
        """``await store`` opens it now rather than on first use, and returns it."""
        return self._opened().__await__()

    async def _opened(self) -> SqliteStore:
        await self.open()
        return self

    async def open(self) -> None:
        """Open the database and migrate it to the latest schema (done on first use)."""
        if self._ready:
            return
        async with self._open_lock:
            if not self._ready:
                await self._call(self._open_sync)
                self._ready = True

    def _open_sync(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            enable_wal(conn, self._busy_timeout)
            conn.execute("PRAGMA synchronous=NORMAL")
            migrate_sqlite(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "store not opened"
        return self._conn

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
        await self.open()
        await self._call(self._write_sync, list(records), list(starts), owner, list(ended))

    def _write_sync(
        self,
        records: list[UsageRecord],
        starts: list[UsageRecord],
        owner: str,
        ended: list[str],
    ) -> None:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if starts:
                conn.executemany(_START_UPSERT, [(*record_to_row(r), owner) for r in starts])
            if records:
                conn.executemany(_UPSERT, [record_to_row(r) for r in records])
            if ended:
                conn.executemany(_END, [(request_id,) for request_id in ended])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def heartbeat(self, instance: Instance, lease: float) -> None:
        """Register `instance` or renew its lease for `lease` seconds from now."""
        await self.open()
        params = (
            instance.instance_id,
            instance.host,
            instance.node,
            instance.pid,
            instance.started_at,
            time.time(),
            lease,
        )
        await self._call(self._change, _HEARTBEAT, params)

    async def retire(self, instance_id: str) -> None:
        """Forget an instance that stops (its unfinished calls become another's to close)."""
        await self.open()
        sql = f"DELETE FROM {INSTANCES_TABLE} WHERE instance_id = ?"
        await self._call(self._change, sql, [instance_id])

    async def instances(self) -> list[InstanceRow]:
        """Every registered instance."""
        await self.open()
        sql = f"SELECT instance_id, node, pid FROM {INSTANCES_TABLE}"
        rows = await self._call(self._fetchall, sql, [])
        return [InstanceRow(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    async def close_interrupted(self, me: str, dead: Sequence[str] = ()) -> int:
        """Close the started calls of every instance but `me` whose lease expired or that
        `dead` names, as rows of their own; how many calls were closed."""
        await self.open()
        return await self._call(self._close_calls_sync, me, list(dead))

    def _close_calls_sync(self, me: str, dead: list[str]) -> int:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            expire = f"UPDATE {INSTANCES_TABLE} SET lease_until = 0 WHERE instance_id = ?"
            conn.executemany(expire, [(i,) for i in dead])
            params = {"me": me, "now": time.time()}
            closed = conn.execute(_CLOSE[0], params).rowcount
            for statement in _CLOSE[1:]:
                conn.execute(statement, params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return max(closed, 0)

    async def started_calls(self) -> int:
        """How many calls are in flight (started, not yet finished or closed)."""
        await self.open()
        rows = await self._call(self._fetchall, f"SELECT COUNT(*) FROM {STARTS_TABLE}", [])
        return int(rows[0][0])

    async def totals(
        self,
        group_by: Sequence[str],
        since: float | None = None,
        until: float | None = None,
        tenant: str | None = None,
    ) -> list[UsageTotalRow]:
        """Usage totals grouped by `group_by`, sorted (see `llmesh.services.ledger.queries`)."""
        sql, params = totals_query(group_by, since, until, tenant, lambda _: "?")
        await self.open()
        rows = await self._call(self._fetchall, sql, params)
        return rows_to_totals(group_by, rows)

    async def recent(self, limit: int, tenant: str | None = None) -> list[UsageRecord]:
        """The latest `limit` records, newest first; `tenant` keeps only that tenant's."""
        sql, params = recent_query(limit, tenant, lambda _: "?", COLUMNS, TABLE)
        await self.open()
        rows = await self._call(self._fetchall, sql, params)
        return [record_from_row(r) for r in rows]

    async def count(self) -> int:
        """How many calls the ledger holds."""
        await self.open()
        rows = await self._call(self._fetchall, f"SELECT COUNT(*) FROM {TABLE}", [])
        return int(rows[0][0])

    async def get(self, request_id: str) -> UsageRecord | None:
        """The record of one call, or None."""
        await self.open()
        sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE request_id = ?"
        rows = await self._call(self._fetchall, sql, [request_id])
        return record_from_row(rows[0]) if rows else None

    def _fetchall(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._db().execute(sql, params).fetchall()

    def _change(self, sql: str, params: Sequence[Any]) -> int:
        return self._db().execute(sql, params).rowcount  # autocommit: one statement

    async def put_response(self, stored: StoredResponse) -> None:
        """Store a response, replacing a row with the same id."""
        await self.open()
        await self._call(self._change, put_sql(["?"] * 5), stored_to_row(stored))

    async def get_response(
        self, response_id: str, tenant: str, now: float
    ) -> StoredResponse | None:
        """The live response `response_id` of `tenant`, or None."""
        await self.open()
        rows = await self._call(self._fetchall, select_sql("???"), [response_id, tenant, now])
        return stored_from_row(rows[0]) if rows else None

    async def delete_response(self, response_id: str, tenant: str) -> bool:
        """Delete the response `response_id` of `tenant`; whether it existed."""
        await self.open()
        return await self._call(self._change, delete_sql("??"), [response_id, tenant]) > 0

    async def prune_responses(self, now: float) -> int:
        """Delete the responses expired at `now`; how many went."""
        await self.open()
        return await self._call(self._change, prune_sql("?"), [now])

    async def aclose(self) -> None:
        """Close the database and stop the store's thread (idempotent)."""
        if self._closed:
            return
        if self._conn is not None:
            await self._call(self._close_sync)
        self._closed = True
        self._executor.shutdown(wait=False)

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
