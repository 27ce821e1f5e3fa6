"""Key stores for the auth tests: a SQLite file per test, a PostgreSQL schema per test.

PostgreSQL is the real server at 127.0.0.1:5432 (trust auth, database ``test``); it is
started when down. Unreachable, it fails the run under ``CI=true`` and skips otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from llmesh.services.auth.store import KeyStore, open_key_store


@pytest.fixture
async def postgres_url(postgres_server: str) -> AsyncIterator[str]:
    """A key store URL whose tables go in a fresh schema, dropped after the test."""
    schema = f"llmesh_auth_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_server)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield f"{postgres_server}?search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A key store URL naming a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'keys.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each backend's URL in turn."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[KeyStore]:
    """An open key store on each backend in turn."""
    opened = await open_key_store(store_url, cache_ttl=60.0)
    try:
        yield opened
    finally:
        await opened.aclose()
