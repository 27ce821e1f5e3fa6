"""Template store fixtures: each store kind in a fresh ledger database (PostgreSQL in a
schema of its own, the ledger tests' fixtures)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llmesh.services.templates.postgres_store import PostgresTemplateStore
from llmesh.services.templates.sqlite_store import SqliteTemplateStore
from tests.ledger.conftest import pg_schema, postgres_server, record

__all__ = ["pg_schema", "postgres_server", "record"]


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Any]:
    """(kind, where): a SQLite file, or (PostgreSQL URL, schema)."""
    if request.param == "sqlite":
        return "sqlite", tmp_path / "llmesh.db"
    url = request.getfixturevalue("postgres_server")
    return "postgres", (url, request.getfixturevalue("pg_schema"))


@pytest.fixture
async def templates(database: tuple[str, Any]) -> AsyncIterator[Any]:
    """A template store of each kind, empty."""
    kind, where = database
    if kind == "sqlite":
        store: Any = SqliteTemplateStore(where)
    else:
        store = PostgresTemplateStore(where[0], schema=where[1])
    try:
        yield store
    finally:
        await store.aclose()
