"""kill -9 of the orchestrator halfway through a batch, then a restart: the batch completes
with exactly one result per item, and no finished item is run again.

Real processes (``llmesh serve emulator`` and ``llmesh serve orchestrator``) on one SQLite
ledger; the batch is paced so that the kill lands while items are in flight.
"""

from __future__ import annotations

import collections
import signal
import sqlite3
from pathlib import Path

import grpc
import pytest
import yaml

from llmesh.v1 import batches_pb2, batches_pb2_grpc
from tests.batch.conftest import chat_item
from tests.batch.test_executor import wait_for
from tests.ledger.test_kill9_inflight import Procs

ITEMS = 300


def _results(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT COUNT(*) FROM batch_items WHERE result_seq IS NOT NULL")
        return int(row.fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def procs(tmp_path: Path) -> Procs:
    made = Procs(tmp_path, f"sqlite:///{tmp_path / 'usage.db'}")
    made.write_config()
    config = yaml.safe_load((tmp_path / "llmesh.yaml").read_text())
    config["batch"] = {"concurrency": 4, "items_per_second": 60, "poll_interval": 0.2}
    (tmp_path / "llmesh.yaml").write_text(yaml.safe_dump(config))
    return made


async def test_kill9_halfway_then_restart_gives_one_result_per_item(procs: Procs) -> None:
    db = procs.workdir / "usage.db"
    try:
        procs.spawn("emulator", "emulator", procs.emulator_port)
        procs.spawn("orchestrator", "orchestrator", procs.orchestrator_port)
        address = f"127.0.0.1:{procs.orchestrator_port}"
        items = [chat_item(f"item-{i:04d}", f"text {i}") for i in range(ITEMS)]
        async with grpc.aio.insecure_channel(address) as channel:
            stub = batches_pb2_grpc.BatchServiceStub(channel)
            batch = (await stub.CreateBatch(batches_pb2.CreateBatchRequest(items=items))).batch

        async def halfway() -> bool:
            return _results(db) >= ITEMS // 3

        await wait_for(halfway, "a third of the results", limit=90)
        victim = procs.procs["orchestrator"]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        before = _results(db)
        assert before < ITEMS  # the kill landed mid-batch

        procs.spawn("orchestrator-2", "orchestrator", procs.orchestrator_port)
        seen: collections.Counter[str] = collections.Counter()
        final = None
        async with grpc.aio.insecure_channel(address) as channel:
            stub = batches_pb2_grpc.BatchServiceStub(channel)
            request = batches_pb2.StreamBatchResultsRequest(batch_id=batch.id)
            async for event in stub.StreamBatchResults(request, timeout=120):
                if event.WhichOneof("event") == "result":
                    seen[event.result.custom_id] += 1
                    assert event.result.state == batches_pb2.BATCH_ITEM_STATE_SUCCEEDED
                elif event.WhichOneof("event") == "finished":
                    final = event.finished.batch
                    break
        assert final is not None and final.state == batches_pb2.BATCH_STATE_COMPLETED
        assert final.counts.completed == ITEMS
        assert set(seen) == {i.custom_id for i in items}
        assert max(seen.values()) == 1  # no duplicates
        conn = sqlite3.connect(db)
        try:
            seqs = [r[0] for r in conn.execute("SELECT result_seq FROM batch_items")]
        finally:
            conn.close()
        assert len(seqs) == ITEMS and len(set(seqs)) == ITEMS and None not in seqs
    finally:
        procs.stop()
        for name in procs.procs:
            log = procs.workdir / f"{name}.log"
            if log.exists() and "Traceback" in log.read_text(errors="replace"):
                print(log.read_text(errors="replace")[-4000:])
