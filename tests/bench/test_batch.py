"""``python -m bench.batch`` on a small batch: it runs, faults are injected, and its checks
hold (every item one result or a dead letter, no duplicates)."""

from __future__ import annotations

from bench.batch import BatchBench, run


async def test_a_small_batch_bench_runs_and_checks_out() -> None:
    result = await run(BatchBench(items=150, fault_rate=0.2, concurrency=8, probe_calls=5))
    assert result["state"] == "BATCH_STATE_COMPLETED"
    assert result["every_item_has_a_result"] and result["duplicates"] == 0
    assert result["faults_injected"] > 0
    counts = result["counts"]
    assert counts["completed"] + counts["failed"] + counts["dead"] == 150
    assert result["dead_letters_listed"] == counts["dead"]
    assert result["interactive_idle"]["calls"] == 5
