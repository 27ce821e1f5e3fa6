"""Key stores for the auth tests: a SQLite file per test, a PostgreSQL schema per test.

PostgreSQL is the real server at 127.0.0.1:5432 (trust auth, database ``test``); it is
started when down. Unreachable, it fails the run under ``CI=true`` and skips otherwise.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from services.auth.store import KeyStore, open_key_store

POSTGRES_URL = os.environ.get(
    "LLMESH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 1):
            return True
    except OSError:
        return False


def _start_postgres() -> None:
    try:
        versions = os.listdir("/etc/postgresql")
    except OSError:
        return
    for version in versions:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            capture_output=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of a reachable PostgreSQL server, started if it was down."""
    if not _reachable(POSTGRES_URL):
        _start_postgres()
        deadline = time.monotonic() + 30
        while not _reachable(POSTGRES_URL) and time.monotonic() < deadline:
            time.sleep(0.2)
    if not _reachable(POSTGRES_URL):
        reason = f"PostgreSQL is not reachable at {POSTGRES_URL} and could not be started"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(reason)
        pytest.skip(reason)
    return POSTGRES_URL


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
