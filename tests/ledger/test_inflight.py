"""Calls in flight: start rows, leases, and closing a dead process's calls as interrupted,
on both stores and through the writer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

from llmesh.services.core import CallStatus
from llmesh.services.ledger import Instance, LedgerWriter, UsageRecord, close_interrupted
from llmesh.services.ledger.instances import InstanceRow, dead_here, local_node, pid_alive
from tests.ledger.conftest import RecordFactory


def _start(record: RecordFactory, n: int) -> UsageRecord:
    return record(n, status=CallStatus.INTERRUPTED, output_tokens=0, usage_estimated=True)


def _hand(writer: LedgerWriter, row: UsageRecord) -> None:
    writer.started(row.request_id, lambda: row)


def _gone_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def _rows(store: Any) -> list[UsageRecord]:
    ids = [f"req-{n:06d}" for n in range(1, 10)]
    found = [await store.get(i) for i in ids]
    return [r for r in found if r is not None]


async def test_a_start_row_is_no_call_until_closed(store: Any, record: RecordFactory) -> None:
    me, other = Instance(), Instance(node="elsewhere")
    await store.heartbeat(me, 60)
    await store.heartbeat(other, 60)
    await store.write([], [_start(record, 1)], owner=other.instance_id)
    assert (await store.count(), await store.started_calls()) == (0, 1)
    assert await store.totals([]) == [] or (await store.totals([]))[0].requests == 0
    # the owner's lease is live: nobody closes its call
    assert await close_interrupted(store, me.instance_id) == 0
    assert await store.started_calls() == 1


async def test_the_final_record_replaces_the_start_row(store: Any, record: RecordFactory) -> None:
    me = Instance()
    await store.heartbeat(me, 60)
    await store.write([], [_start(record, 1), _start(record, 2)], owner=me.instance_id)
    final = record(1, output_tokens=77)
    await store.write([final], ended=[final.request_id])
    assert (await store.count(), await store.started_calls()) == (1, 1)
    assert await store.get("req-000001") == final


async def test_an_expired_lease_gets_its_calls_closed_once(
    store: Any, record: RecordFactory
) -> None:
    me, gone = Instance(), Instance(node="another-host")
    await store.heartbeat(me, 60)
    await store.heartbeat(gone, 0.05)
    await store.write([], [_start(record, 1), _start(record, 2)], owner=gone.instance_id)
    await asyncio.sleep(0.2)
    assert await close_interrupted(store, me.instance_id) == 2
    assert await close_interrupted(store, me.instance_id) == 0
    rows = await _rows(store)
    assert [r.status for r in rows] == [CallStatus.INTERRUPTED] * 2
    assert all(r.input_tokens == 100 and r.usage_estimated for r in rows)
    assert (await store.count(), await store.started_calls()) == (2, 0)
    assert [i.instance_id for i in await store.instances()] == [me.instance_id]
    (total,) = await store.totals([])
    assert (total.requests, total.failed) == (2, 2)  # they reached a provider; none finished


async def test_a_dead_process_here_is_closed_before_its_lease_expires(
    store: Any, record: RecordFactory
) -> None:
    me = Instance()
    dead = Instance(pid=_gone_pid())
    await store.heartbeat(me, 60)
    await store.heartbeat(dead, 60)
    await store.write([], [_start(record, 3)], owner=dead.instance_id)
    assert await close_interrupted(store, me.instance_id) == 1
    rec = await store.get("req-000003")
    assert rec is not None and rec.status is CallStatus.INTERRUPTED


async def test_a_start_row_without_an_instance_is_orphaned(
    store: Any, record: RecordFactory
) -> None:
    me = Instance()
    await store.heartbeat(me, 60)
    await store.write([], [_start(record, 4)], owner="never-registered")
    await store.write([], [_start(record, 5)], owner=me.instance_id)
    assert await close_interrupted(store, me.instance_id) == 1  # never mine
    assert await store.started_calls() == 1


async def test_a_late_final_record_replaces_the_interrupted_row(
    store: Any, record: RecordFactory
) -> None:
    gone = Instance(node="paused-host")
    await store.heartbeat(gone, 0.01)
    await store.write([], [_start(record, 6)], owner=gone.instance_id)
    await asyncio.sleep(0.1)
    assert await close_interrupted(store, "sweeper") == 1
    final = record(6)  # the paused process comes back and finishes the call
    await store.write([final], ended=[final.request_id])
    assert await store.count() == 1 and await store.get("req-000006") == final


def test_liveness_here() -> None:
    assert pid_alive(os.getpid()) and not pid_alive(_gone_pid())
    node = local_node()
    rows = [
        InstanceRow("alive", node, os.getpid()),
        InstanceRow("dead", node, _gone_pid()),
        InstanceRow("far", "other-machine", _gone_pid()),
        InstanceRow("me", node, _gone_pid()),
    ]
    assert dead_here(rows, "me", node) == ["dead"]
    assert dead_here(rows, "me", "") == []  # no /proc: leases alone decide


async def test_writer_never_writes_a_start_for_a_call_that_ends_first(
    sqlite_store: Any, record: RecordFactory
) -> None:
    writer = LedgerWriter(sqlite_store, flush_interval=30.0, instance=Instance())
    await writer.register()
    _hand(writer, _start(record, 1))
    writer.record(record(1))
    await writer.flush()
    assert (await sqlite_store.count(), await sqlite_store.started_calls()) == (1, 0)
    await writer.aclose()


async def test_writer_writes_starts_with_the_next_flush_and_ends_them(
    sqlite_store: Any, record: RecordFactory
) -> None:
    writer = LedgerWriter(sqlite_store, flush_interval=30.0, instance=Instance())
    await writer.register()
    _hand(writer, _start(record, 1))
    _hand(writer, _start(record, 2))
    assert await sqlite_store.started_calls() == 0  # nothing on the hot path
    await writer.flush()
    assert (await sqlite_store.count(), await sqlite_store.started_calls()) == (0, 2)
    writer.record(record(1))
    writer.discard("req-000002")  # ended with nothing sent
    await writer.flush()
    assert (await sqlite_store.count(), await sqlite_store.started_calls()) == (1, 0)
    await writer.aclose()
    assert await sqlite_store.instances() == []  # a graceful stop releases the lease


async def test_a_failing_row_builder_loses_no_final_record(
    sqlite_store: Any, record: RecordFactory
) -> None:
    writer = LedgerWriter(sqlite_store, flush_interval=30.0, instance=Instance())
    await writer.register()

    def broken() -> UsageRecord:
        raise KeyError("a bug")

    writer.started("req-000001", broken)
    _hand(writer, _start(record, 2))
    await writer.flush()
    assert await sqlite_store.started_calls() == 1
    writer.record(record(1))
    await writer.flush()
    assert await sqlite_store.count() == 1
    await writer.aclose()


async def test_writer_start_rows_wait_for_a_failing_store(
    sqlite_store: Any, record: RecordFactory
) -> None:
    writer = LedgerWriter(sqlite_store, flush_interval=30.0, instance=Instance())
    await writer.register()
    _hand(writer, _start(record, 1))
    real = sqlite_store.write
    failing = True

    async def write(*args: Any, **kwargs: Any) -> None:
        if failing:
            raise ConnectionError("down")
        await real(*args, **kwargs)

    sqlite_store.write = write
    await writer.flush()
    failing = False
    await writer.flush()
    assert await sqlite_store.started_calls() == 1
    writer.record(record(1))
    await writer.flush()
    assert (await sqlite_store.count(), await sqlite_store.started_calls()) == (1, 0)
    await writer.aclose()


async def test_writer_closes_the_calls_of_a_dead_process_at_registration(
    sqlite_store: Any, record: RecordFactory
) -> None:
    dead = Instance(pid=_gone_pid())
    await sqlite_store.heartbeat(dead, 60)
    await sqlite_store.write([], [_start(record, 1)], owner=dead.instance_id)
    writer = LedgerWriter(sqlite_store, instance=Instance())
    assert await writer.register() == 1
    assert writer.closed_interrupted == 1
    rec = await sqlite_store.get("req-000001")
    assert rec is not None and rec.status is CallStatus.INTERRUPTED
    await writer.aclose()


async def test_writer_renews_its_lease_and_sweeps(sqlite_store: Any, record: RecordFactory) -> None:
    writer = LedgerWriter(sqlite_store, flush_interval=0.01, instance=Instance(), lease=0.3)
    await writer.register()
    writer.start()
    gone = Instance(node="another-host")
    await sqlite_store.heartbeat(gone, 0.05)
    await sqlite_store.write([], [_start(record, 1)], owner=gone.instance_id)
    for _ in range(200):
        if await sqlite_store.count():
            break
        await asyncio.sleep(0.02)
    assert writer.closed_interrupted == 1
    mine = [i.instance_id for i in await sqlite_store.instances()]
    assert mine == [writer.instance.instance_id]  # type: ignore[union-attr]
    await writer.aclose()
