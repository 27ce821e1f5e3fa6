"""What only the PostgreSQL store does: shared schema creation, NOTIFY on revoke, stored rows.

The behaviour both backends share is tested in test_store.py against each of them.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from llmesh.services.auth.postgres_store import PostgresKeyStore
from llmesh.services.auth.store import SCHEMA_VERSION, open_key_store


async def test_concurrent_first_opens_create_the_schema_once(postgres_url: str) -> None:
    stores = await asyncio.gather(*(open_key_store(postgres_url) for _ in range(4)))
    try:
        assert all(isinstance(s, PostgresKeyStore) for s in stores)
        _, key = await stores[0].create("acme")
        for store in stores:  # one pepper for all
            assert await store.verify(key) is not None
    finally:
        for store in stores:
            await store.aclose()
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetch("SELECT version FROM llmesh_schema_version") == [(SCHEMA_VERSION,)]
    finally:
        await conn.close()


async def test_a_revoke_elsewhere_ends_at_once_through_notify(postgres_url: str) -> None:
    server = await open_key_store(postgres_url, cache_ttl=60.0)
    admin = await open_key_store(postgres_url)
    try:
        info, key = await admin.create("acme")
        assert await server.verify(key) is not None  # cached for a minute
        assert await admin.revoke(info.key_id)
        deadline = time.monotonic() + 2.0
        while await server.verify(key) is not None:
            assert time.monotonic() < deadline, "the revocation notice never arrived"
            await asyncio.sleep(0.01)
    finally:
        await server.aclose()
        await admin.aclose()


async def test_rows_hold_no_plaintext_secret(postgres_url: str) -> None:
    store = await open_key_store(postgres_url)
    try:
        created = [await store.create("acme", "ci") for _ in range(3)]
    finally:
        await store.aclose()
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = []
        for table in ("llmesh_api_keys", "llmesh_auth_meta", "llmesh_schema_version"):
            rows += await conn.fetch(f"SELECT t::text AS row FROM {table} t")
        dump = "\n".join(r["row"] for r in rows)
        hashes = await conn.fetch("SELECT secret_hash FROM llmesh_api_keys")
    finally:
        await conn.close()
    assert created[0][0].key_id in dump
    assert all(len(h["secret_hash"]) == 32 for h in hashes)
    for _, key in created:
        assert key.split("_", 2)[2] not in dump


async def test_refuses_a_newer_schema(postgres_url: str) -> None:
    store = await open_key_store(postgres_url)
    await store.aclose()
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("UPDATE llmesh_schema_version SET version = 99")
    finally:
        await conn.close()
    with pytest.raises(RuntimeError, match="schema version 99"):
        await open_key_store(postgres_url)


async def test_repr_names_the_database_only(postgres_url: str) -> None:
    store = await open_key_store(postgres_url)
    try:
        assert repr(store) == f"PostgresKeyStore({postgres_url})"
        assert "pepper" not in repr(store)
    finally:
        await store.aclose()
