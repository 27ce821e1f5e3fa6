"""The key store on both backends: create, verify, revoke, cache, and what it keeps on disk."""

from __future__ import annotations

import asyncio
import hmac
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from llmesh.services.auth.keys import Principal, parse_key
from llmesh.services.auth.sqlite_store import sqlite_path
from llmesh.services.auth.store import KeyStore, StoredKey, open_key_store, redact_url


def _tamper(key: str) -> str:
    last = "A" if key[-1] != "A" else "B"
    return key[:-1] + last


async def test_create_then_verify(store: KeyStore) -> None:
    info, key = await store.create("acme", "ci")
    assert info.tenant == "acme" and info.name == "ci" and info.active
    assert key.startswith(f"llm_{info.key_id}_")
    assert await store.verify(key) == Principal("acme", info.key_id)
    assert await store.verify(key) == Principal("acme", info.key_id)  # from the cache


async def test_wrong_tampered_unknown_and_malformed_keys_fail(store: KeyStore) -> None:
    _, key = await store.create("acme")
    other_info, other_key = await store.create("acme")
    key_id, secret = parse_key(key) or ("", "")
    _, other_secret = parse_key(other_key) or ("", "")
    assert await store.verify(_tamper(key)) is None
    assert await store.verify(f"llm_{key_id}_{other_secret}") is None  # another key's secret
    assert await store.verify(f"llm_0123456789ab_{secret}") is None  # unknown key id
    assert await store.verify("not a key") is None
    assert await store.verify("") is None
    # A cached key still checks its secret.
    assert await store.verify(key) is not None
    assert await store.verify(_tamper(key)) is None
    assert await store.verify(other_key) == Principal("acme", other_info.key_id)


async def test_revoke_takes_effect_at_once_in_process(store: KeyStore) -> None:
    info, key = await store.create("acme")
    assert await store.verify(key) is not None  # now cached for 60 s
    assert await store.revoke(info.key_id) is True
    assert await store.verify(key) is None
    assert await store.revoke(info.key_id) is False  # already revoked
    assert await store.revoke("0123456789ab") is False  # unknown
    assert await store.revoke("not an id") is False
    (listed,) = await store.list()
    assert listed.key_id == info.key_id and listed.revoked_at is not None and not listed.active


async def test_list_by_tenant_without_secrets(store: KeyStore) -> None:
    a1, key_a1 = await store.create("acme", "one")
    b1, _ = await store.create("beta")
    a2, _ = await store.create("acme", "two")
    everything = await store.list()
    assert [k.key_id for k in everything] == [a1.key_id, b1.key_id, a2.key_id]
    assert [k.key_id for k in await store.list("acme")] == [a1.key_id, a2.key_id]
    assert await store.list("nobody") == []
    assert everything[0] == a1
    secret = key_a1.split("_", 2)[2]
    assert secret not in repr(everything)


async def test_has_keys_stays_true_after_the_last_revoke(store: KeyStore) -> None:
    assert await store.has_keys() is False
    info, _ = await store.create("acme")
    assert await store.has_keys() is True
    await store.revoke(info.key_id)
    assert await store.has_keys() is True


async def test_create_validates_tenant_and_name(store: KeyStore) -> None:
    with pytest.raises(ValueError, match="tenant"):
        await store.create("")
    with pytest.raises(ValueError, match="tenant"):
        await store.create("a b")
    with pytest.raises(ValueError, match="control"):
        await store.create("acme", "x\ny")
    assert await store.list() == []


async def test_comparison_is_constant_time(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = await store.create("acme")
    calls: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert await store.verify(_tamper(key)) is None  # database path, mismatch
    assert await store.verify(key) is not None  # database path, match
    assert await store.verify(key) is not None  # cache path, match
    assert await store.verify(_tamper(key)) is None  # cache path, mismatch
    assert len(calls) == 4
    assert all(len(a) == len(b) == 32 for a, b in calls)


async def test_reprs_and_logs_show_no_secret(
    store: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    info, key = await store.create("acme", "ci")
    secret = key.split("_", 2)[2]
    await store.verify(key)
    await store.verify(_tamper(key))
    await store.revoke(info.key_id)
    row = StoredKey(info, b"\x01" * 32)
    for text in (repr(store), repr(info), repr(row), caplog.text):
        assert secret not in text
        assert key not in text
    assert "\\x01" not in repr(row)
    assert info.key_id in caplog.text


async def test_cache_is_bounded(store_url: str) -> None:
    store = await open_key_store(store_url, cache_size=2)
    try:
        keys = [(await store.create("acme"))[1] for _ in range(5)]
        for key in keys:
            assert await store.verify(key) is not None
        assert len(store._cache) <= 2
        for key in keys:
            assert await store.verify(key) is not None
    finally:
        await store.aclose()


async def test_a_revoke_during_a_lookup_is_not_cached_over(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = await store.create("acme")
    real = store._lookup
    lookups = 0

    async def racing_lookup(key_id: str) -> StoredKey | None:
        nonlocal lookups
        lookups += 1
        row = await real(key_id)
        store.invalidate(key_id)  # a revocation notice arrives while the row is in flight
        return row

    monkeypatch.setattr(store, "_lookup", racing_lookup)
    assert await store.verify(key) is not None
    assert await store.verify(key) is not None
    assert lookups == 2  # the first answer was not cached


async def test_reopen_is_idempotent_and_keeps_keys(store_url: str) -> None:
    first = await open_key_store(store_url)
    info, key = await first.create("acme")
    await first.aclose()
    second = await open_key_store(store_url)
    try:
        assert await second.verify(key) == Principal("acme", info.key_id)  # same pepper
        assert [k.key_id for k in await second.list()] == [info.key_id]
    finally:
        await second.aclose()


async def test_a_revoke_elsewhere_ends_within_the_cache_ttl(store_url: str) -> None:
    server = await open_key_store(store_url, cache_ttl=0.2)
    admin = await open_key_store(store_url)
    try:
        info, key = await admin.create("acme")
        assert await server.verify(key) is not None
        assert await admin.revoke(info.key_id)
        await asyncio.sleep(0.3)
        assert await server.verify(key) is None
    finally:
        await server.aclose()
        await admin.aclose()


async def test_a_cached_verify_reads_no_database(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = await store.create("acme")
    lookups: list[str] = []
    lookup = store._lookup

    async def counted(key_id: str) -> StoredKey | None:
        lookups.append(key_id)
        return await lookup(key_id)

    monkeypatch.setattr(store, "_lookup", counted)
    first = await store.verify(key)
    assert first is not None and len(lookups) == 1
    for _ in range(100):
        assert await store.verify(key) == first
    assert len(lookups) == 1  # every later verify was answered from the cache
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert parse_key(wrong) is not None  # well formed: it reaches the cached entry
    assert await store.verify(wrong) is None
    assert len(lookups) == 1  # a wrong secret for a cached key is refused from the cache too


# SQLite only


def _database_bytes(folder: Path) -> bytes:
    """The bytes of the database file and its WAL and shared-memory files."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("keys.db"))


async def test_sqlite_file_holds_no_plaintext_secret(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = await open_key_store(f"sqlite:///{path}")
    try:
        created = [await store.create("acme", "ci") for _ in range(3)]
        await store.revoke(created[0][0].key_id)
    finally:
        await store.aclose()
    blob = _database_bytes(tmp_path)
    assert created[1][0].key_id.encode() in blob  # the file is readable as bytes
    for _, key in created:
        secret = key.split("_", 2)[2]
        assert secret.encode() not in blob
        assert key.encode() not in blob


async def test_sqlite_uses_wal_and_records_its_schema_version(sqlite_url: str) -> None:
    store = await open_key_store(sqlite_url)
    await store.aclose()
    with sqlite3.connect(sqlite_path(sqlite_url)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM llmesh_schema_version").fetchall() == [(2,)]
    conn.close()


async def test_sqlite_refuses_a_newer_schema(sqlite_url: str) -> None:
    store = await open_key_store(sqlite_url)
    await store.aclose()
    conn = sqlite3.connect(sqlite_path(sqlite_url))
    with conn:
        conn.execute("UPDATE llmesh_schema_version SET version = 99")
    conn.close()
    with pytest.raises(RuntimeError, match="schema version 99"):
        await open_key_store(sqlite_url)


async def test_sqlite_in_memory_and_closed_store() -> None:
    store = await open_key_store("sqlite:///:memory:")
    _, key = await store.create("acme")
    assert await store.verify(key) is not None
    await store.aclose()
    await store.aclose()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        await store.list()


def test_sqlite_urls() -> None:
    assert sqlite_path("sqlite:///keys.db") == "keys.db"
    assert sqlite_path("sqlite:////var/lib/llmesh/keys.db") == "/var/lib/llmesh/keys.db"
    with pytest.raises(ValueError, match="sqlite:///PATH"):
        sqlite_path("sqlite:///")
    with pytest.raises(ValueError, match="sqlite:///PATH"):
        sqlite_path("sqlite://keys.db")


async def test_unknown_url_scheme() -> None:
    with pytest.raises(ValueError, match="unsupported key store URL scheme 'mysql'"):
        await open_key_store("mysql://localhost/keys")


def test_redact_url() -> None:
    assert redact_url("postgresql://u:hunter2@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact_url("postgresql://u@db/x") == "postgresql://u@db/x"
    assert redact_url("sqlite:///keys.db") == "sqlite:///keys.db"
