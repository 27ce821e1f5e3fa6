"""The batch store on SQLite and PostgreSQL: items unique by custom_id, one result each,
results numbered in commit order, claims, dead letters, files."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from llmesh.services.batch.model import BatchMode, BatchRow, BatchState, FileRow, ItemState
from llmesh.services.batch.store import BatchStore, open_batch_store


def _row(batch_id: str, total: int, tenant: str = "acme", created: float | None = None) -> BatchRow:
    return BatchRow(
        batch_id=batch_id,
        tenant=tenant,
        key_id="k1",
        state=BatchState.QUEUED,
        mode=BatchMode.MESH,
        metadata={"job": "nightly"},
        input_file_id="",
        created_at=time.time() if created is None else created,
        total=total,
    )


async def _make(store: BatchStore, batch_id: str, n: int) -> None:
    await store.create(_row(batch_id, n), [(f"c{i}", f"in{i}".encode()) for i in range(n)])


async def test_create_get_and_count(store: BatchStore) -> None:
    await _make(store, "b1", 5)
    row = await store.get("b1")
    assert row is not None
    assert (row.tenant, row.key_id, row.total, row.metadata) == (
        "acme",
        "k1",
        5,
        {"job": "nightly"},
    )
    assert (await store.counts("b1"))[ItemState.PENDING] == 5
    assert await store.get("nope") is None


async def test_custom_ids_are_unique_per_batch(store: BatchStore) -> None:
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await store.create(_row("b1", 2), [("same", b"a"), ("same", b"b")])
    assert await store.get("b1") is None  # nothing of the batch was stored
    await _make(store, "b2", 1)
    await _make(store, "b3", 1)  # the same custom_id in another batch is fine
    assert (await store.counts("b3")).total == 1


async def test_an_item_gets_exactly_one_result(store: BatchStore) -> None:
    await _make(store, "b1", 3)
    taken = await store.take_pending("b1", 2)
    assert [t.custom_id for t in taken] == ["c0", "c1"]
    assert taken[0].input == b"in0"
    first = await store.finish("b1", "c0", ItemState.SUCCEEDED, b"r0", attempts=1)
    again = await store.finish("b1", "c0", ItemState.SUCCEEDED, b"r0-again", attempts=1)
    assert first == 1 and again is None
    pending = await store.finish("b1", "c2", ItemState.SUCCEEDED, b"x", attempts=1)
    assert pending is None  # not running: not written
    assert await store.results_after("b1", 0, 10) == [(1, b"r0")]


async def test_results_are_numbered_in_commit_order(store: BatchStore) -> None:
    await _make(store, "b1", 40)
    items = await store.take_pending("b1", 40)

    async def finish(cid: str) -> None:
        await store.finish("b1", cid, ItemState.SUCCEEDED, cid.encode(), attempts=1)

    await asyncio.gather(*(finish(i.custom_id) for i in items))
    results = await store.results_after("b1", 0, 100)
    assert [seq for seq, _ in results] == list(range(1, 41))
    assert sorted(r for _, r in results) == sorted(i.custom_id.encode() for i in items)
    assert await store.results_after("b1", 38, 100) == results[38:]


async def test_claim_resets_items_of_a_dead_executor(store: BatchStore) -> None:
    await _make(store, "b1", 3)
    assert await store.claim("b1", "one")
    await store.take_pending("b1", 2)
    # "one" has no live lease in the ledger: another instance takes the batch over, and the
    # items "one" had in flight run again
    assert await store.claim("b1", "two")
    assert (await store.counts("b1"))[ItemState.PENDING] == 3
    assert (await store.get("b1")).owner == "two"  # type: ignore[union-attr]
    await store.release("b1", "two")
    assert (await store.get("b1")).owner == ""  # type: ignore[union-attr]


async def test_claim_respects_a_live_executor(store: BatchStore) -> None:
    from llmesh.services.ledger import Instance
    from llmesh.services.ledger.stores import LedgerStore

    await _make(store, "b1", 1)
    ledger: LedgerStore = _ledger_like(store)
    live = Instance(instance_id="alive")
    await ledger.heartbeat(live, 60)
    try:
        assert await store.claim("b1", "alive")
        assert not await store.claim("b1", "other")
        assert await store.claim("b1", "other", dead=["alive"])  # its process is gone
    finally:
        await ledger.aclose()


def _ledger_like(store: BatchStore):  # type: ignore[no-untyped-def]
    """The ledger store on the same database as `store`."""
    from llmesh.services.batch.backends import PostgresBackend, SqliteBackend
    from llmesh.services.ledger import PostgresStore, SqliteStore

    backend = store._db
    if isinstance(backend, SqliteBackend):
        return SqliteStore(backend.path)
    assert isinstance(backend, PostgresBackend)
    return PostgresStore(backend.url, schema=backend.schema)


async def test_dead_letters_and_retry(store: BatchStore) -> None:
    await _make(store, "b1", 3)
    await store.take_pending("b1", 3)
    trail = [{"number": 1, "reason": "OVERLOADED", "message": "busy", "at": 1.0}]
    for cid in ("c0", "c2"):
        await store.finish("b1", cid, ItemState.DEAD, b"err", attempts=3, trail=trail)
    await store.finish("b1", "c1", ItemState.SUCCEEDED, b"ok", attempts=1)
    dead = await store.dead_letters("b1", "", 10)
    assert [d.custom_id for d in dead] == ["c0", "c2"]
    assert dead[0].trail[0]["reason"] == "OVERLOADED"
    assert [d.custom_id for d in await store.dead_letters("b1", "c0", 10)] == ["c2"]
    assert await store.retry_dead("b1", "c2") == 1
    assert await store.item_state("b1", "c2") is ItemState.PENDING
    assert await store.retry_dead("b1", None) == 1
    counts = await store.counts("b1")
    assert (counts[ItemState.PENDING], counts[ItemState.SUCCEEDED]) == (2, 1)
    # a retried item's old result is gone: its next result is its only one
    assert [r for _, r in await store.results_after("b1", 0, 10)] == [b"ok"]


async def test_states_move_only_from_expected_ones(store: BatchStore) -> None:
    await _make(store, "b1", 1)
    assert await store.set_state("b1", BatchState.IN_PROGRESS, started=True)
    assert not await store.set_state(
        "b1", BatchState.QUEUED, expect=frozenset({BatchState.PAUSED_BUDGET})
    )
    assert await store.set_state("b1", BatchState.COMPLETED, finished=True, detail="done")
    row = await store.get("b1")
    assert row is not None and row.state is BatchState.COMPLETED
    assert row.started_at is not None and row.finished_at is not None
    assert row.status_detail == "done"
    assert [r.batch_id for r in await store.runnable()] == []


async def test_a_batch_completes_only_with_no_item_left(store: BatchStore) -> None:
    await _make(store, "b1", 2)
    await store.set_state("b1", BatchState.IN_PROGRESS)
    await store.take_pending("b1", 2)
    await store.finish("b1", "c0", ItemState.SUCCEEDED, b"r", attempts=1)
    assert not await store.complete_if_done("b1")  # c1 still runs
    await store.finish("b1", "c1", ItemState.DEAD, b"e", attempts=3)
    await store.retry_dead("b1", "c1")  # retried just before the executor looks
    assert not await store.complete_if_done("b1")
    await store.take_pending("b1", 1)
    await store.finish("b1", "c1", ItemState.SUCCEEDED, b"r", attempts=1)
    assert await store.complete_if_done("b1")
    row = await store.get("b1")
    assert row is not None and row.state is BatchState.COMPLETED and row.finished_at
    assert not await store.complete_if_done("b1")  # only from in_progress


async def test_listing_pages_newest_first_by_tenant(store: BatchStore) -> None:
    for i in range(5):
        await store.create(_row(f"b{i}", 1, created=1000.0 + i), [("c", b"x")])
    await store.create(_row("other", 1, tenant="zeta", created=2000.0), [("c", b"x")])
    page = await store.list_batches("acme", before=None, limit=3)
    assert [r.batch_id for r in page] == ["b4", "b3", "b2"]
    last = page[-1]
    rest = await store.list_batches("acme", before=(last.created_at, last.batch_id), limit=3)
    assert [r.batch_id for r in rest] == ["b1", "b0"]
    assert len(await store.list_batches(None, before=None, limit=10)) == 6


async def test_files(store: BatchStore) -> None:
    await store.put_file(FileRow("file-1", "acme", "in.jsonl", 12, 2, 5.0, "line1\nline2\n"))
    bare = await store.get_file("file-1")
    full = await store.get_file("file-1", content=True)
    assert bare is not None and bare.content == "" and bare.item_count == 2
    assert full is not None and full.content == "line1\nline2\n"
    assert await store.get_file("file-2") is None


async def test_native_batches(store: BatchStore) -> None:
    await _make(store, "b1", 3)
    assert [i.custom_id for i in await store.unsubmitted("b1")] == ["c0", "c1", "c2"]
    await store.add_native("b1", "openai", "nb-1", ["c0", "c1"])
    await store.mark_running("b1", "nb-1")
    assert [i.custom_id for i in await store.unsubmitted("b1")] == ["c2"]
    assert await store.native_item_input("b1", "nb-1") in (b"in0", b"in1")
    await store.finish("b1", "c0", ItemState.SUCCEEDED, b"ok", attempts=1)
    ended = await store.fail_unfinished("b1", "nb-1", ItemState.DEAD, lambda c: c.encode())
    assert ended == 1
    assert await store.item_state("b1", "c1") is ItemState.DEAD
    await store.set_native_state("b1", "nb-1", "expired")
    assert [(n.provider, n.state) for n in await store.natives("b1")] == [("openai", "expired")]


async def test_a_result_survives_reopening(store_factory: Callable[[], BatchStore]) -> None:
    first = store_factory()
    await _make(first, "b1", 2)
    await first.take_pending("b1", 1)
    await first.finish("b1", "c0", ItemState.SUCCEEDED, b"kept", attempts=1)
    await first.aclose()
    second = store_factory()
    try:
        assert await second.results_after("b1", 0, 10) == [(1, b"kept")]
    finally:
        await second.aclose()


def test_open_batch_store_reads_ledger_urls(tmp_path: object) -> None:
    from llmesh.services.batch.backends import PostgresBackend, SqliteBackend

    assert isinstance(open_batch_store("sqlite:///x.db")._db, SqliteBackend)
    pg = open_batch_store("postgresql://u@h:5432/db?schema=s1")._db
    assert isinstance(pg, PostgresBackend) and pg.schema == "s1"
    with pytest.raises(ValueError, match="unsupported"):
        open_batch_store("mysql://x")


async def test_a_cancelled_caller_never_leaves_a_transaction_open(
    sqlite_store: BatchStore, tmp_path: Path
) -> None:
    await _make(sqlite_store, "b1", 3)
    other = sqlite3.connect(tmp_path / "batch.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the store's next BEGIN IMMEDIATE waits for this
    task = asyncio.create_task(sqlite_store.take_pending("b1", 1))
    await asyncio.sleep(0.2)
    task.cancel()  # cancelled while its BEGIN waits on the database lock
    await asyncio.sleep(0.05)
    other.execute("COMMIT")  # now that BEGIN goes through, for a caller that is gone
    other.close()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    taken = await sqlite_store.take_pending("b1", 1)  # no "transaction within a transaction"
    assert [t.custom_id for t in taken] == ["c0"]


async def test_cancel_pending_writes_one_result_per_unrun_item(store: BatchStore) -> None:
    await _make(store, "b1", 4)
    taken = await store.take_pending("b1", 1)  # c0 runs: its own result comes later
    await store.record_attempt("b1", "c1", 2, [])  # c1 was tried twice, then put back
    made: list[tuple[str, int]] = []

    def result(custom_id: str, attempts: int) -> bytes:
        made.append((custom_id, attempts))
        return f"cancelled {custom_id}".encode()

    assert await store.cancel_pending("b1", result) == 3
    assert made == [("c1", 2), ("c2", 0), ("c3", 0)]
    assert await store.results_after("b1", 0, 10) == [
        (1, b"cancelled c1"),
        (2, b"cancelled c2"),
        (3, b"cancelled c3"),
    ]
    assert await store.cancel_pending("b1", result) == 0  # once: nothing written again
    assert len(made) == 3
    counts = await store.counts("b1")
    assert (counts[ItemState.CANCELLED], counts[ItemState.RUNNING]) == (3, 1)
    assert await store.finish("b1", taken[0].custom_id, ItemState.SUCCEEDED, b"r", attempts=1)
    assert [seq for seq, _ in await store.results_after("b1", 0, 10)] == [1, 2, 3, 4]


async def test_files_list_by_tenant_newest_first_and_delete(store: BatchStore) -> None:
    for i, (tenant, created) in enumerate([("acme", 1.0), ("acme", 2.0), ("globex", 3.0)]):
        await store.put_file(FileRow(f"file-{i}", tenant, f"{i}.jsonl", 4, 1, created, "x\n"))
    await store.put_file(FileRow("file-9", "acme", "9.jsonl", 4, 1, 2.0, "x\n"))  # a tie
    acme = await store.list_files("acme", before=None, limit=10)
    assert [f.file_id for f in acme] == ["file-9", "file-1", "file-0"]
    assert all(f.content == "" for f in acme)  # descriptions only
    page = await store.list_files("acme", before=(2.0, "file-9"), limit=1)
    assert [f.file_id for f in page] == ["file-1"]
    assert len(await store.list_files(None, before=None, limit=10)) == 4
    assert await store.delete_file("file-1") is True
    assert await store.delete_file("file-1") is False
    assert await store.get_file("file-1") is None
    assert [f.file_id for f in await store.list_files("acme", before=None, limit=10)] == [
        "file-9",
        "file-0",
    ]


async def test_a_submission_marker_until_adopted_or_released(store: BatchStore) -> None:
    await _make(store, "b1", 3)
    await store.reserve_native("b1", "openai", "llmesh-submit-1-x", ["c0", "c1"])
    assert [i.custom_id for i in await store.unsubmitted("b1")] == ["c2"]
    assert await store.native_item_count("b1", "llmesh-submit-1-x") == 2
    (marker,) = await store.natives("b1")
    assert (marker.provider_batch_id, marker.state) == ("llmesh-submit-1-x", "submitting")
    await store.release_native("b1", "llmesh-submit-1-x")
    assert await store.natives("b1") == []
    assert len(await store.unsubmitted("b1")) == 3
    await store.reserve_native("b1", "openai", "llmesh-submit-2-y", ["c0"])
    await store.adopt_native("b1", "llmesh-submit-2-y", "batch_123")
    (adopted,) = await store.natives("b1")
    assert (adopted.provider_batch_id, adopted.state) == ("batch_123", "in_progress")
    assert (await store.counts("b1"))[ItemState.RUNNING] == 1
