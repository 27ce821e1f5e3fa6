"""The batched writer: never blocks the caller, never loses records on a graceful close."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from llmesh.services.ledger import LedgerWriter, SqliteStore, UsageRecord
from tests.ledger.conftest import RecordFactory


class FakeStore:
    """Records each written batch; can fail, be down, or reject given request ids."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.fail_next = 0
        self.down = False
        self.full = False  # answers, but refuses every write
        self.reject: set[str] = set()

    @property
    def ids(self) -> list[str]:
        return [i for b in self.batches for i in b]

    async def write(self, records: Sequence[UsageRecord]) -> None:
        await asyncio.sleep(0)
        if self.down:
            raise ConnectionError("store down")
        if self.full:
            raise OSError("disk full")
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("transient")
        if any(r.request_id in self.reject for r in records):
            raise ValueError("value out of range")
        self.batches.append([r.request_id for r in records])

    async def totals(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    async def count(self) -> int:
        if self.down:
            raise ConnectionError("store down")
        return len(self.ids)

    async def aclose(self) -> None:
        pass


async def _eventually(check: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_record_is_synchronous_and_touches_no_store(record: RecordFactory) -> None:
    store = FakeStore()
    writer = LedgerWriter(store)  # type: ignore[arg-type]
    assert not inspect.iscoroutinefunction(writer.record)
    for n in range(20_000):
        writer.record(record(n))
    assert store.batches == [] and writer.pending == 20_000  # queued, nothing written yet
    await writer.aclose()
    assert len(store.ids) == 20_000


async def test_batches_of_max_batch(record: RecordFactory) -> None:
    store = FakeStore()
    writer = LedgerWriter(store, max_batch=500)  # type: ignore[arg-type]
    for n in range(1200):
        writer.record(record(n))
    await writer.flush()
    assert [len(b) for b in store.batches] == [500, 500, 200]
    assert store.ids == [f"req-{n:06d}" for n in range(1200)]  # in order
    assert (writer.pending, writer.written, writer.dropped) == (0, 1200, 0)


async def test_background_flush_every_interval(record: RecordFactory) -> None:
    store = FakeStore()
    writer = LedgerWriter(store, flush_interval=0.02)  # type: ignore[arg-type]
    writer.start()
    writer.start()  # idempotent
    try:
        assert writer.running
        writer.record(record(1))
        handed = time.monotonic()
        await _eventually(lambda: store.ids == ["req-000001"])
        assert time.monotonic() - handed < 0.5
        writer.record(record(2))
        writer.record(record(3))
        await _eventually(lambda: len(store.ids) == 3)
    finally:
        await writer.aclose()
    assert not writer.running


async def test_a_full_batch_wakes_the_writer(record: RecordFactory) -> None:
    store = FakeStore()
    writer = LedgerWriter(store, flush_interval=30.0, max_batch=10)  # type: ignore[arg-type]
    writer.start()
    try:
        for n in range(10):
            writer.record(record(n))
        await _eventually(lambda: len(store.ids) == 10)
    finally:
        await writer.aclose()


async def test_graceful_close_writes_everything(
    record: RecordFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = FakeStore()
    writer = LedgerWriter(store, flush_interval=30.0, max_batch=100)  # type: ignore[arg-type]
    writer.start()
    for n in range(1050):
        writer.record(record(n))
    await writer.aclose()
    await writer.aclose()  # idempotent
    assert len(store.ids) == 1050 and writer.pending == 0
    with caplog.at_level(logging.ERROR, logger="llmesh.ledger"):
        writer.record(record(9999))  # after close: dropped, logged, no exception
    assert writer.dropped == 1 and "closed" in caplog.text
    writer.start()
    assert not writer.running


async def test_failed_writes_are_retried_next_tick(
    record: RecordFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = FakeStore()
    store.fail_next = 3
    writer = LedgerWriter(store, flush_interval=0.01)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="llmesh.ledger"):
        writer.start()
        for n in range(5):
            writer.record(record(n))
        await _eventually(lambda: len(store.ids) == 5)
        await writer.aclose()
    assert sorted(store.ids) == [f"req-{n:06d}" for n in range(5)]  # each once
    assert writer.dropped == 0
    assert "failed (ConnectionError: transient)" in caplog.text
    assert "accepts writes again" in caplog.text


async def test_bounded_buffer_drops_with_a_log(
    record: RecordFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = FakeStore()
    store.down = True
    writer = LedgerWriter(store, max_buffer=10, close_retries=0)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="llmesh.ledger"):
        for n in range(15):
            writer.record(record(n))
    assert writer.pending == 10 and writer.dropped == 5
    assert "buffer is full" in caplog.text
    store.down = False
    await writer.aclose()
    assert store.ids == [f"req-{n:06d}" for n in range(10)]


async def test_a_store_that_is_down_loses_nothing(record: RecordFactory) -> None:
    store = FakeStore()
    store.down = True
    writer = LedgerWriter(store, flush_interval=0.005)  # type: ignore[arg-type]
    writer.start()
    try:
        for n in range(20):
            writer.record(record(n))
        await asyncio.sleep(0.15)  # many failed ticks, isolation attempts included
        assert writer.pending == 20 and writer.dropped == 0
        store.down = False
        await _eventually(lambda: len(store.ids) == 20)
    finally:
        await writer.aclose()
    assert writer.dropped == 0


async def test_a_store_refusing_every_write_loses_nothing(record: RecordFactory) -> None:
    store = FakeStore()
    store.full = True
    writer = LedgerWriter(store)  # type: ignore[arg-type]
    for n in range(3):
        writer.record(record(n))
    for _ in range(9):
        await writer.flush()
    assert writer.pending == 3 and writer.dropped == 0
    store.full = False
    await writer.aclose()
    assert len(store.ids) == 3


async def test_a_record_the_store_rejects_is_isolated(
    record: RecordFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = FakeStore()
    store.reject = {"req-000002"}
    writer = LedgerWriter(store)  # type: ignore[arg-type]
    for n in range(1, 5):
        writer.record(record(n))
    with caplog.at_level(logging.ERROR, logger="llmesh.ledger"):
        for n in range(5, 20):  # traffic goes on; the bad record is blamed and dropped
            await writer.flush()
            writer.record(record(n))
            if writer.dropped:
                break
        await writer.flush()
    assert writer.dropped == 1 and writer.pending == 0
    assert sorted(store.ids) == [f"req-{i:06d}" for i in range(1, n + 1) if i != 2]
    assert "dropped the record of req-000002" in caplog.text
    await writer.aclose()


async def test_a_lone_rejected_record_waits_for_evidence(record: RecordFactory) -> None:
    """With nothing else to write, a refused record might be a store fault: it is kept."""
    store = FakeStore()
    store.reject = {"req-000001"}
    writer = LedgerWriter(store)  # type: ignore[arg-type]
    writer.record(record(1))
    for _ in range(20):
        await writer.flush()
    assert writer.pending == 1 and writer.dropped == 0
    store.reject = set()
    await writer.aclose()
    assert store.ids == ["req-000001"]


async def test_close_with_a_failing_store_reports_the_loss(
    record: RecordFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = FakeStore()
    store.down = True
    writer = LedgerWriter(store, close_retries=1)  # type: ignore[arg-type]
    writer.start()
    writer.record(record(1))
    with caplog.at_level(logging.ERROR, logger="llmesh.ledger"):
        await writer.aclose()  # no exception
    assert writer.dropped == 1 and "1 records lost at shutdown" in caplog.text


async def test_end_to_end_with_sqlite(tmp_path: Path, record: RecordFactory) -> None:
    store = SqliteStore(tmp_path / "u.db")
    writer = LedgerWriter(store, flush_interval=0.01, max_batch=250)
    writer.start()
    try:
        for n in range(2000):
            writer.record(record(n))
            if n % 100 == 0:
                await asyncio.sleep(0)
        await writer.aclose()
        assert await store.count() == 2000
        assert writer.written == 2000
    finally:
        await store.aclose()


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        LedgerWriter(FakeStore(), flush_interval=0)  # type: ignore[arg-type]
