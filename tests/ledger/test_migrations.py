"""Schema creation and migration, by llmesh itself, in both stores."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from llmesh.services.ledger import PostgresStore, SqliteStore
from llmesh.services.ledger.postgres_store import migrate_postgres
from llmesh.services.ledger.schema import COLUMNS, LATEST_VERSION, MIGRATIONS, record_to_row
from llmesh.services.ledger.sqlite_store import migrate_sqlite, sqlite_schema_version
from tests.ledger.conftest import RecordFactory

V1_COLUMNS = COLUMNS[: COLUMNS.index("priority")]
"""The columns of schema 1 (later versions only add columns at the end)."""


def _sqlite_indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    conn.close()
    return {r[0] for r in rows}


async def test_sqlite_v1_to_v2(tmp_path: Path, record: RecordFactory) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate_sqlite(conn, target=1) == 1
    placeholders = ", ".join("?" * len(V1_COLUMNS))
    conn.execute(
        f"INSERT INTO usage_records ({', '.join(V1_COLUMNS)}) VALUES ({placeholders})",
        record_to_row(record(1))[: len(V1_COLUMNS)],
    )
    conn.close()
    assert "usage_records_day" not in _sqlite_indexes(path)

    store = SqliteStore(path)
    try:
        assert await store.count() == 1
        assert await store.get("req-000001") == record(1)
        downgraded = replace(record(2), downgraded_from="openai/gpt-4o")
        await store.write([downgraded])
        assert await store.get("req-000002") == downgraded
    finally:
        await store.aclose()
    assert {"usage_records_day", "usage_records_tenant_ts"} <= _sqlite_indexes(path)
    conn = sqlite3.connect(path)
    assert sqlite_schema_version(conn) == LATEST_VERSION == 9
    assert [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")] == [
        m.version for m in MIGRATIONS
    ]
    conn.close()


async def test_sqlite_reopen_is_idempotent(tmp_path: Path, record: RecordFactory) -> None:
    path = tmp_path / "u.db"
    for n in range(3):
        store = SqliteStore(path)
        try:
            await store.write([record(n)])
            assert await store.count() == n + 1
        finally:
            await store.aclose()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone() == (len(MIGRATIONS),)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


async def test_sqlite_pragmas(sqlite_store: SqliteStore) -> None:
    await sqlite_store.open()

    def pragmas() -> tuple[str, int]:
        db = sqlite_store._db()
        return db.execute("PRAGMA journal_mode").fetchone()[0], db.execute(
            "PRAGMA synchronous"
        ).fetchone()[0]

    assert await sqlite_store._call(pragmas) == ("wal", 1)  # 1 is NORMAL


async def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate_sqlite(conn)
    conn.execute("INSERT INTO schema_version VALUES (99, 'from the future', 0)")
    conn.close()
    store = SqliteStore(path)
    try:
        with pytest.raises(RuntimeError, match="newer than this llmesh"):
            await store.count()
    finally:
        await store.aclose()


async def test_sqlite_never_blocks_the_loop(tmp_path: Path, record: RecordFactory) -> None:
    """A write waiting on a locked database waits on the store's thread, not the loop."""
    path = tmp_path / "u.db"
    store = SqliteStore(path)
    await store.open()
    locked, release = threading.Event(), threading.Event()

    def hold_write_lock() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(5)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold_write_lock)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 5)
        write = asyncio.create_task(store.write([record(1)]))
        ticks, start = 0, time.monotonic()
        while time.monotonic() - start < 0.3:
            await asyncio.sleep(0.01)
            ticks += 1
        assert not write.done()  # still waiting for the lock...
        assert ticks >= 15  # ...while the loop kept running
        release.set()
        await write
        assert await store.count() == 1
    finally:
        release.set()
        await asyncio.to_thread(holder.join)
        await store.aclose()


async def test_postgres_v1_to_v2(
    postgres_server: str, pg_schema: str, record: RecordFactory
) -> None:
    conn = await asyncpg.connect(postgres_server, server_settings={"search_path": pg_schema})
    try:
        assert await migrate_postgres(conn, pg_schema, target=1) == 1
        placeholders = ", ".join(f"${i}" for i in range(1, len(V1_COLUMNS) + 1))
        await conn.execute(
            f"INSERT INTO usage_records ({', '.join(V1_COLUMNS)}) VALUES ({placeholders})",
            *record_to_row(record(1))[: len(V1_COLUMNS)],
        )
    finally:
        await conn.close()

    store = PostgresStore(postgres_server, schema=pg_schema)
    try:
        assert await store.count() == 1
        assert await store.get("req-000001") == record(1)
        downgraded = replace(record(2), downgraded_from="openai/gpt-4o")
        await store.write([downgraded])
        assert await store.get("req-000002") == downgraded
    finally:
        await store.aclose()
    conn = await asyncpg.connect(postgres_server)
    try:
        versions = await conn.fetch(f'SELECT version FROM "{pg_schema}".schema_version ORDER BY 1')
        indexes = await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1", pg_schema
        )
    finally:
        await conn.close()
    assert [r[0] for r in versions] == [m.version for m in MIGRATIONS]
    assert {"usage_records_day", "usage_records_tenant_ts", "call_starts_owner"} <= {
        r[0] for r in indexes
    }


async def test_postgres_concurrent_opens_migrate_once(
    postgres_server: str, pg_schema: str, record: RecordFactory
) -> None:
    stores = [PostgresStore(postgres_server, schema=pg_schema) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        await asyncio.gather(*(s.write([record(i)]) for i, s in enumerate(stores)))
        assert await stores[0].count() == 4
    finally:
        for s in stores:
            await s.aclose()
    again = PostgresStore(postgres_server, schema=pg_schema)  # re-opening changes nothing
    try:
        assert await again.count() == 4
    finally:
        await again.aclose()


@pytest.mark.parametrize(
    ("json_type", "digest"),
    [
        ("TEXT", "b38b0fc2f2ea1afb74427576744d89364a0c68509e42cddc236a0d751c5fd1ef"),
        ("JSONB", "5e668466c2e1dd847ffea48e94e17096cc009c52c102db676f0973a254566773"),
    ],
)
def test_released_migrations_keep_their_sql(json_type: str, digest: str) -> None:
    # the SQL of versions 1-6 as released; a changed statement would leave databases that
    # ran the old one different from new ones (a change is a new migration instead)
    released = [s for m in MIGRATIONS if m.version <= 6 for s in m.sql(json_type)]
    assert hashlib.sha256("\n;\n".join(released).encode()).hexdigest() == digest


async def test_sqlite_call_starts_has_the_records_columns_and_an_owner(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "usage.db", isolation_level=None)
    try:
        migrate_sqlite(conn)
        records = conn.execute("PRAGMA table_info(usage_records)").fetchall()
        starts = conn.execute("PRAGMA table_info(call_starts)").fetchall()
    finally:
        conn.close()
    assert [r[1] for r in records] == list(COLUMNS)
    # the same columns (the ones added since version 6 after the owner), and the owner
    by_name = {r[1]: r[2:] for r in starts}
    assert by_name.pop("owner") == ("TEXT", 1, None, 0)
    assert by_name == {r[1]: r[2:] for r in records}


async def test_postgres_call_starts_has_the_records_columns_and_an_owner(
    postgres_server: str, pg_schema: str
) -> None:
    conn = await asyncpg.connect(postgres_server, server_settings={"search_path": pg_schema})
    try:
        await migrate_postgres(conn, pg_schema)
        query = (
            "SELECT column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2"
            " ORDER BY ordinal_position"
        )
        records = [tuple(r) for r in await conn.fetch(query, pg_schema, "usage_records")]
        starts = [tuple(r) for r in await conn.fetch(query, pg_schema, "call_starts")]
    finally:
        await conn.close()
    assert [r[0] for r in records] == list(COLUMNS)
    by_name = {r[0]: r[1:] for r in starts}
    assert by_name.pop("owner") == ("text", "NO", None)
    assert by_name == {r[0]: r[1:] for r in records}


V7_COLUMNS = COLUMNS[: COLUMNS.index("trace_id")]
"""The columns of schema 7 (version 9 added ``trace_id``)."""

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_sqlite_v7_to_v9_adds_the_trace_id(tmp_path: Path, record: RecordFactory) -> None:
    path = tmp_path / "v7.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate_sqlite(conn, target=7) == 7
    conn.execute(
        f"INSERT INTO usage_records ({', '.join(V7_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(V7_COLUMNS))})",
        record_to_row(record(1))[: len(V7_COLUMNS)],
    )
    conn.close()
    store = SqliteStore(path)
    try:
        assert await store.get("req-000001") == record(1)  # an older row: no trace id
        traced = replace(record(2), trace_id=TRACE_ID)
        await store.write([traced])
        assert await store.get("req-000002") == traced
        [latest, _] = await store.recent(10, None)
        assert latest.trace_id == TRACE_ID
    finally:
        await store.aclose()
    conn = sqlite3.connect(path)
    try:
        assert sqlite_schema_version(conn) == 9
        starts = [r[1] for r in conn.execute("PRAGMA table_info(call_starts)").fetchall()]
    finally:
        conn.close()
    assert "trace_id" in starts


async def test_postgres_v7_to_v9_adds_the_trace_id(
    postgres_server: str, pg_schema: str, record: RecordFactory
) -> None:
    conn = await asyncpg.connect(postgres_server, server_settings={"search_path": pg_schema})
    try:
        assert await migrate_postgres(conn, pg_schema, target=7) == 7
        placeholders = ", ".join(f"${i}" for i in range(1, len(V7_COLUMNS) + 1))
        await conn.execute(
            f"INSERT INTO usage_records ({', '.join(V7_COLUMNS)}) VALUES ({placeholders})",
            *record_to_row(record(1))[: len(V7_COLUMNS)],
        )
    finally:
        await conn.close()
    store = PostgresStore(postgres_server, schema=pg_schema)
    try:
        assert await store.get("req-000001") == record(1)
        traced = replace(record(2), trace_id=TRACE_ID)
        await store.write([traced])
        assert await store.get("req-000002") == traced
        [latest, _] = await store.recent(10, None)
        assert latest.trace_id == TRACE_ID
    finally:
        await store.aclose()
