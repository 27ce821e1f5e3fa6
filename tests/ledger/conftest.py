"""Ledger test fixtures: records, a SQLite store per test, a PostgreSQL schema per test.

PostgreSQL is the real server at 127.0.0.1:5432 (trust auth, database ``test``), started
when it is down. Each test gets its own schema, named after this run; the run's schemas
are dropped at the end. Unreachable, PostgreSQL fails the run under ``CI=true`` and skips
its tests otherwise.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from llmesh.services.ledger import PostgresStore, SqliteStore, UsageRecord
from tests.support.servers import ensure_postgres

RUN_PREFIX = f"ledger_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
"""Every PostgreSQL schema this test run creates starts with this."""

_schema_numbers = itertools.count(1)

RecordFactory = Callable[..., UsageRecord]


def make_record(n: int, **fields: Any) -> UsageRecord:
    """A plausible record number `n`; `fields` override."""
    base: dict[str, Any] = {
        "request_id": f"req-{n:06d}",
        "ts": 1_762_000_000.0 + n,
        "tenant": "acme",
        "key_id": "key-1",
        "route": "fast",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 100,
        "output_tokens": 20,
        "cost_usd": 0.001,
        "duration_ms": 12.5,
    }
    base.update(fields)
    return UsageRecord(**base)


@pytest.fixture
def record() -> RecordFactory:
    """`make_record` as a fixture."""
    return make_record


async def _drop_run_schemas(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        names = await conn.fetch(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE $1",
            RUN_PREFIX + "%",
        )
        for row in names:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{row[0]}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of the real PostgreSQL; this run's schemas are dropped afterwards."""
    url = ensure_postgres()
    yield url
    asyncio.run(_drop_run_schemas(url))


@pytest.fixture
def pg_schema(postgres_server: str) -> str:
    """A fresh schema name for one test (created by the store that uses it)."""
    return f"{RUN_PREFIX}_{next(_schema_numbers)}"


@pytest.fixture
async def pg_store(postgres_server: str, pg_schema: str) -> AsyncIterator[PostgresStore]:
    """A PostgreSQL store in a schema of its own."""
    store = PostgresStore(postgres_server, schema=pg_schema)
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A SQLite store in a fresh file."""
    store = SqliteStore(tmp_path / "usage.db")
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    """Builds each store kind in turn (PostgreSQL in a schema of its own)."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "usage.db")
    url = request.getfixturevalue("postgres_server")  # not inside the event loop
    schema = request.getfixturevalue("pg_schema")
    return lambda: PostgresStore(url, schema=schema)


@pytest.fixture
async def store(store_factory: Callable[[], Any]) -> AsyncIterator[Any]:
    """Each store kind in turn, empty."""
    s = store_factory()
    try:
        yield s
    finally:
        await s.aclose()
