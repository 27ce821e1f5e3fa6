"""The two databases a batch store runs on, behind one small transaction interface.

The store's SQL is written once, with ``?`` placeholders; the PostgreSQL backend numbers
them (``$1``...). SQLite runs on one connection driven from one dedicated thread (the event
loop never waits on the disk), its transactions one at a time; PostgreSQL runs on an
asyncpg pool. Both create and migrate the ledger's schema on first use, as the ledger
stores do (the batch tables are the ledger's migration 8).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg

from llmesh.services.common.sqlite import enable_wal
from llmesh.services.ledger.postgres_store import close_pool, open_migrated_pool
from llmesh.services.ledger.schema import INSTANCES_TABLE
from llmesh.services.ledger.sqlite_store import migrate_sqlite

__all__ = ["Backend", "PostgresBackend", "SqliteBackend", "Tx"]

_T = TypeVar("_T")
Row = tuple[Any, ...]


class Tx(Protocol):
    """One open transaction."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per row of parameters."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Run a query; its rows."""
        ...

    async def live_instances(self) -> set[str]:
        """The ledger instances whose lease has not expired (on the database's clock)."""
        ...


class Backend(Protocol):
    """Opens transactions on one database."""

    def transaction(self, *, write: bool) -> Any:
        """An async context manager yielding a `Tx`; committed when the block ends, rolled
        back when it raises. A read-only one (`write` False) takes no write lock."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads (idempotent)."""
        ...


class _SqliteTx:
    def __init__(self, backend: SqliteBackend) -> None:
        self._b = backend

    async def execute(self, sql: str, *args: Any) -> int:
        return await self._b.call(lambda c: c.execute(sql, args).rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._b.call(lambda c: c.executemany(sql, rows))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._b.call(lambda c: [tuple(r) for r in c.execute(sql, args).fetchall()])

    async def live_instances(self) -> set[str]:
        rows = await self.fetch(
            f"SELECT instance_id FROM {INSTANCES_TABLE} WHERE lease_until >= ?", time.time()
        )
        return {r[0] for r in rows}


class SqliteBackend:
    """A SQLite file (WAL, ``synchronous=NORMAL``: a committed item survives kill -9)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = str(path)
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmesh-batch")
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `fn` on the connection, on the store's thread."""
        if self._closed:
            raise RuntimeError("the batch store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._run, fn))

    def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._conn is None:
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
        return fn(self._conn)

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[Tx]:
        # The thread runs statements in order, so a ROLLBACK or COMMIT queued here runs
        # before the next transaction's BEGIN even when the awaiting task is cancelled.
        async with self._lock:
            try:
                await self.call(lambda c: c.execute("BEGIN IMMEDIATE" if write else "BEGIN"))
                yield _SqliteTx(self)
            except BaseException:
                await asyncio.shield(self.call(_rollback))
                raise
            await asyncio.shield(self.call(lambda c: c.execute("COMMIT")))

    async def aclose(self) -> None:
        if self._closed:
            return
        async with self._lock:
            conn = self._conn
            if conn is not None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, conn.close)
            self._closed = True
        self._executor.shutdown(wait=False)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


_PLACEHOLDER = re.compile(r"\?")


def _numbered(sql: str) -> str:
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


class _PgTx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self._conn.execute(_numbered(sql), *args)
        tail = str(status).rpartition(" ")[2]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(_numbered(sql), rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return [tuple(r) for r in await self._conn.fetch(_numbered(sql), *args)]

    async def live_instances(self) -> set[str]:
        rows = await self._conn.fetch(
            f"SELECT instance_id FROM {INSTANCES_TABLE} "
            "WHERE lease_until >= EXTRACT(EPOCH FROM now())::double precision"
        )
        return {r[0] for r in rows}


class PostgresBackend:
    """A PostgreSQL database; `schema` keeps the tables apart (default: the search path)."""

    def __init__(self, url: str, *, schema: str | None = None, max_size: int = 4) -> None:
        self.url = url
        self.schema = schema
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False

    async def _ready(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._closed:
            raise RuntimeError("the batch store is closed")
        async with self._open_lock:
            if self._pool is None:
                self._pool = await open_migrated_pool(
                    self.url, self.schema, max_size=self._max_size
                )
        return self._pool

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[Tx]:
        pool = await self._ready()
        async with pool.acquire() as conn, conn.transaction(readonly=not write):
            yield _PgTx(conn)

    async def aclose(self) -> None:
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await close_pool(pool)
