"""API keys' priority tiers: stored on both backends, migrated from schema 1, set by the CLI."""

from __future__ import annotations

import json
import sqlite3

import asyncpg
import pytest

from llmesh.services.auth import keys_command
from llmesh.services.auth.store import SCHEMA_VERSION, KeyStore, open_key_store
from llmesh.services.core.priority import Priority

_V1_KEYS = """CREATE TABLE llmesh_api_keys (
    key_id      TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    secret_hash {blob} NOT NULL,
    created_at  {time} NOT NULL,
    revoked_at  {time}
)"""


async def test_tiers_are_stored_and_come_with_the_principal(store: KeyStore) -> None:
    info, key = await store.create(
        "acme", "svc", default_priority=Priority.HIGH, max_priority=Priority.CRITICAL
    )
    assert (info.default_priority, info.max_priority) == (Priority.HIGH, Priority.CRITICAL)
    principal = await store.verify(key)
    assert principal is not None
    assert (principal.default_priority, principal.max_priority) == (
        Priority.HIGH,
        Priority.CRITICAL,
    )
    (listed,) = await store.list("acme")
    assert (listed.default_priority, listed.max_priority) == (Priority.HIGH, Priority.CRITICAL)


async def test_a_key_without_a_maximum_stops_at_normal(store: KeyStore) -> None:
    _, key = await store.create("acme")
    principal = await store.verify(key)
    assert principal is not None
    assert principal.default_priority is None and principal.max_priority is Priority.NORMAL


async def test_a_default_above_the_maximum_is_refused(store: KeyStore) -> None:
    with pytest.raises(ValueError, match="above the key's maximum"):
        await store.create("acme", default_priority=Priority.HIGH)
    assert not await store.has_keys()


async def test_sqlite_schema_1_is_migrated_keeping_its_keys(sqlite_url: str) -> None:
    store = await open_key_store(sqlite_url)
    info, key = await store.create("acme")
    await store.aclose()
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:  # back to schema 1: the table without the tiers
        rows = conn.execute(
            "SELECT key_id, tenant, name, secret_hash, created_at, revoked_at FROM llmesh_api_keys"
        ).fetchall()
        conn.execute("DROP TABLE llmesh_api_keys")
        conn.execute(_V1_KEYS.format(blob="BLOB", time="TEXT"))
        conn.executemany("INSERT INTO llmesh_api_keys VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.execute("DELETE FROM llmesh_schema_version")
        conn.execute("INSERT INTO llmesh_schema_version VALUES (1)")
    store = await open_key_store(sqlite_url)
    try:
        principal = await store.verify(key)
        assert principal is not None and principal.max_priority is Priority.NORMAL
        _, new_key = await store.create("acme", max_priority=Priority.HIGH)
        assert (await store.verify(new_key)).max_priority is Priority.HIGH  # type: ignore[union-attr]
    finally:
        await store.aclose()
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT max(version) FROM llmesh_schema_version").fetchone()[0]
    assert version == SCHEMA_VERSION == 2
    assert info.key_id in key


async def test_postgres_schema_1_is_migrated_keeping_its_keys(postgres_url: str) -> None:
    store = await open_key_store(postgres_url)
    _, key = await store.create("acme")
    await store.aclose()
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("ALTER TABLE llmesh_api_keys DROP COLUMN default_priority")
        await conn.execute("ALTER TABLE llmesh_api_keys DROP COLUMN max_priority")
        await conn.execute("DELETE FROM llmesh_schema_version")
        await conn.execute("INSERT INTO llmesh_schema_version VALUES (1)")
        store = await open_key_store(postgres_url)
        try:
            principal = await store.verify(key)
            assert principal is not None and principal.max_priority is Priority.NORMAL
            _, new_key = await store.create("acme", default_priority=Priority.LOW)
            assert (await store.verify(new_key)).default_priority is Priority.LOW  # type: ignore[union-attr]
        finally:
            await store.aclose()
        assert await conn.fetchval("SELECT max(version) FROM llmesh_schema_version") == 2
    finally:
        await conn.close()


async def test_cli_sets_and_lists_the_tiers(sqlite_url: str) -> None:
    code, out = await keys_command(
        sqlite_url,
        "create",
        tenant="acme",
        name="pager",
        key_id=None,
        json_output=True,
        default_priority="high",
        max_priority="critical",
    )
    assert code == 0
    created = json.loads(out)
    assert (created["default_priority"], created["max_priority"]) == ("high", "critical")
    code, table = await keys_command(
        sqlite_url, "list", tenant=None, name="", key_id=None, json_output=False
    )
    assert code == 0 and "high (max critical)" in table.splitlines()[1]


async def test_cli_refuses_unknown_or_inconsistent_tiers(sqlite_url: str) -> None:
    async def create(default: str | None, ceiling: str | None) -> tuple[int, str]:
        return await keys_command(
            sqlite_url,
            "create",
            tenant="acme",
            name="",
            key_id=None,
            json_output=False,
            default_priority=default,
            max_priority=ceiling,
        )

    code, out = await create("urgent", None)
    assert code == 2 and "--priority" in out and "critical" in out
    code, out = await create(None, "top")
    assert code == 2 and "--max-priority" in out
    code, out = await create("critical", "high")
    assert code == 2 and "above the key's maximum" in out
