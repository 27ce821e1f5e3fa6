"""Both stores: one row per call, records round-trip, JSON columns, awaitable opening."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from llmesh.services.common.errors import Reason
from llmesh.services.core import CallStatus
from llmesh.services.core.trail import Outcome
from llmesh.services.core.usage import Usage
from llmesh.services.ledger import LedgerStore, PostgresStore, SqliteStore, open_store
from tests.ledger.conftest import RecordFactory


async def test_round_trip(store: Any, record: RecordFactory) -> None:
    rec = record(
        1,
        user="u-7",
        session="s-1",
        attempts=[
            {
                "target": "openai/gpt-4o",
                "outcome": "failed",
                "reason": "RATE_LIMITED",
                "usage": None,
            },
            {"target": "openai/gpt-4o-mini", "outcome": "succeeded", "ttft_ms": 81.5},
        ],
        cache_read_tokens=4000,
        cache_write_tokens=10,
        reasoning_tokens=3,
        cache_savings_usd=0.0003,
        ttft_ms=81.5,
        usage_estimated=True,
        metadata={"team": "search", "trace": "abc"},
        priority="critical",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )
    await store.write([rec])
    assert await store.count() == 1
    assert await store.get("req-000001") == rec
    assert await store.get("missing") is None


async def test_one_row_per_request(store: Any, record: RecordFactory) -> None:
    await store.write([record(1), record(2)])
    await store.write(
        [record(1, output_tokens=99, status=CallStatus.ERROR, error_reason="OVERLOADED")]
    )
    await store.write([record(3), record(3, cost_usd=0.5)])  # repeated within a batch
    await store.write([])
    assert await store.count() == 3
    got = await store.get("req-000001")
    assert got is not None and got.output_tokens == 99 and got.status is CallStatus.ERROR
    got = await store.get("req-000003")
    assert got is not None and got.cost_usd == 0.5


async def test_json_columns_take_anything(store: Any, record: RecordFactory) -> None:
    odd = record(
        1,
        attempts=[
            {"usage": Usage(input_tokens=3), "outcome": Outcome.SUCCEEDED, 5: Reason.CANCELLED}
        ],
        metadata={"nul\x00key": "a\x00b", "emoji": "🦙"},
        user="x\x00y",
    )
    await store.write([odd])
    got = await store.get("req-000001")
    assert got is not None
    assert got.attempts[0]["usage"]["input_tokens"] == 3
    assert got.attempts[0]["outcome"] == "succeeded"
    assert got.attempts[0]["5"] == "CANCELLED"
    assert got.metadata["emoji"] == "🦙"
    if isinstance(store, PostgresStore):  # PostgreSQL cannot hold NUL characters
        assert got.user == "xy" and got.metadata == {"nulkey": "ab", "emoji": "🦙"}
    else:
        assert got.user == "x\x00y" and got.metadata["nul\x00key"] == "a\x00b"


async def test_awaiting_a_store_opens_it(store_factory: Any, tmp_path: Path) -> None:
    store = store_factory()
    try:
        assert await store is store
        assert isinstance(store, LedgerStore)
        assert await store.count() == 0
    finally:
        await store.aclose()
        await store.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await store.count()


async def test_concurrent_writers_on_one_sqlite_file(tmp_path: Path, record: RecordFactory) -> None:
    a, b = SqliteStore(tmp_path / "u.db"), SqliteStore(tmp_path / "u.db")
    try:

        async def writes(s: SqliteStore, offset: int) -> None:
            for i in range(20):
                await s.write([record(offset + i * 10 + j) for j in range(10)])

        await asyncio.gather(writes(a, 0), writes(b, 100_000))
        assert await a.count() == await b.count() == 400
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///usage.db", "usage.db"),
        ("sqlite:///data/usage.db", "data/usage.db"),
        ("sqlite:////var/lib/llmesh/usage.db", "/var/lib/llmesh/usage.db"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_open_store_sqlite_urls(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SqliteStore) and store.path == path


def test_open_store_postgres_urls() -> None:
    store = open_store("postgresql://u@db:5432/llmesh?schema=ledger&sslmode=disable")
    assert isinstance(store, PostgresStore)
    assert store.schema == "ledger"
    assert store.url == "postgresql://u@db:5432/llmesh?sslmode=disable"
    plain = open_store("postgres://u@db/llmesh")
    assert isinstance(plain, PostgresStore) and plain.schema is None


@pytest.mark.parametrize("url", ["sqlite://usage.db", "sqlite:///", "mysql://x/y", "usage.db"])
def test_open_store_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        open_store(url)


async def test_memory_store() -> None:
    store = open_store("sqlite:///:memory:")
    try:
        assert await store.count() == 0
    finally:
        await store.aclose()


async def test_every_status_is_stored_as_its_string_and_read_back_typed(
    store: Any, record: RecordFactory
) -> None:
    await store.write([record(i, status=s) for i, s in enumerate(CallStatus)])
    for i, s in enumerate(CallStatus):
        got = await store.get(f"req-{i:06d}")
        assert got is not None and got.status is s
