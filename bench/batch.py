"""``python -m bench.batch``: a large mesh-run batch against the emulator, with failures.

An emulator and an orchestrator run as ``llmesh serve`` processes on a SQLite ledger. The
emulator fails `fault_rate` of the batch model's requests at random (a server error, which
the executor retries, the path's own retries being off); interactive calls go to another
model, without faults. The run measures:

- interactive latency at concurrency 1 (a unary Chat, one after the other) without any
  batch, then again while the batch runs;
- the batch's throughput (items/s from creation to its finished event) and the
  orchestrator's peak RSS while it ran;

and checks that every item has exactly one result (succeeded or failed) or is a dead
letter, and that the stream carried no custom_id twice.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx
import yaml

from bench.clients import grpc_channel
from bench.ports import free_port
from bench.procs import clean_env, llmesh_argv, start
from bench.report import write_json
from llmesh.v1 import (
    batches_pb2,
    batches_pb2_grpc,
    chat_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)

BATCH_MODEL = "emulator/batch-echo"
INTERACTIVE_MODEL = "emulator/echo"


@dataclass(frozen=True)
class BatchBench:
    """One batch run."""

    items: int = 10_000
    fault_rate: float = 0.05
    concurrency: int = 32
    """The executor's `batch.concurrency`."""
    probe_calls: int = 100
    """Interactive calls measured without the batch."""


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _item(i: int) -> batches_pb2.BatchItem:
    return batches_pb2.BatchItem(
        custom_id=f"item-{i:06d}",
        chat=chat_pb2.ChatInput(
            model=BATCH_MODEL,
            messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=f"summarize item {i}")],
            max_tokens=16,
        ),
    )


async def _probe(stub: Any) -> float:
    request = orchestrator_pb2.ChatRequest(
        input=chat_pb2.ChatInput(
            model=INTERACTIVE_MODEL,
            messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="ping")],
            max_tokens=8,
        )
    )
    start_ = perf_counter()
    await stub.Chat(request, timeout=30)
    return (perf_counter() - start_) * 1000


def _summary(ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "calls": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
    }


async def run(s: BatchBench) -> dict[str, Any]:
    """Run the bench; its figures and checks."""
    with tempfile.TemporaryDirectory(prefix="llmesh-batch-") as tmp:
        directory = Path(tmp)
        ports = {"emulator": free_port(), "orchestrator": free_port()}
        config = {
            "emulator": {"host": "127.0.0.1", "port": ports["emulator"]},
            "ledger": {"flush_interval": 0.05},
            "cache": {"response": {"enabled": False}},
            # one try per call in the path: a faulted item reaches the executor, which
            # tries it again (max_attempts 3) or makes it a dead letter
            "resilience": {"retry": {"max_attempts": 1}},
            "batch": {"concurrency": s.concurrency, "retry_backoff": 0.2},
        }
        (directory / "llmesh.yaml").write_text(yaml.safe_dump(config))
        env = clean_env(
            {
                "LLMESH_CONFIG": str(directory / "llmesh.yaml"),
                "LLMESH_DATABASE_URL": f"sqlite:///{directory / 'ledger.db'}",
                "LLMESH_ORCHESTRATOR_ADDRESS": f"127.0.0.1:{ports['orchestrator']}",
            }
        )
        services = {}
        try:
            for name in ("emulator", "orchestrator"):
                services[name] = await start(
                    name,
                    llmesh_argv("serve", name),
                    port=ports[name],
                    pin=(),
                    logs=directory,
                    env=env,
                )
            async with httpx.AsyncClient() as http:
                rule = {"model": "batch-echo", "fault": "server_error", "rate": s.fault_rate}
                url = f"http://127.0.0.1:{ports['emulator']}/emulator/faults"
                (await http.post(url, json=rule)).raise_for_status()
            address = f"127.0.0.1:{ports['orchestrator']}"
            result = await _measure(s, address, services["orchestrator"].pid)
            async with httpx.AsyncClient() as http:
                faults = (await http.get(url)).json()
            result["faults_injected"] = sum(faults.get("injected", {}).values())
            return result
        finally:
            for service in reversed(services.values()):
                service.stop()


async def _measure(s: BatchBench, address: str, pid: int) -> dict[str, Any]:
    async with grpc_channel(address) as channel:
        chat = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        batches = batches_pb2_grpc.BatchServiceStub(channel)
        for _ in range(10):  # warm up
            await _probe(chat)
        idle = [await _probe(chat) for _ in range(s.probe_calls)]
        rss_before = _rss_kib(pid)

        started = perf_counter()
        items = [_item(i) for i in range(s.items)]
        batch = (await batches.CreateBatch(batches_pb2.CreateBatchRequest(items=items))).batch
        del items
        done = asyncio.Event()
        peak = [rss_before]
        busy: list[float] = []

        async def probe_while_running() -> None:
            while not done.is_set():
                busy.append(await _probe(chat))
                peak[0] = max(peak[0], _rss_kib(pid))

        prober = asyncio.create_task(probe_while_running())
        seen: collections.Counter[str] = collections.Counter()
        states: collections.Counter[str] = collections.Counter()
        final = None
        request = batches_pb2.StreamBatchResultsRequest(batch_id=batch.id)
        async for event in batches.StreamBatchResults(request):
            if event.WhichOneof("event") == "result":
                seen[event.result.custom_id] += 1
                states[batches_pb2.BatchItemState.Name(event.result.state)] += 1
            elif event.WhichOneof("event") == "finished":
                final = event.finished.batch
                break
        elapsed = perf_counter() - started
        done.set()
        await prober
        dead = 0
        token = ""
        while True:
            page = await batches.ListDeadLetters(
                batches_pb2.ListDeadLettersRequest(
                    batch_id=batch.id, page_size=1000, page_token=token
                )
            )
            dead += len(page.dead_letters)
            token = page.next_page_token
            if not token:
                break
    assert final is not None
    every = {f"item-{i:06d}" for i in range(s.items)}
    return {
        "settings": asdict(s),
        "items_per_s": round(s.items / elapsed, 1),
        "seconds": round(elapsed, 1),
        "state": batches_pb2.BatchState.Name(final.state),
        "counts": {
            "completed": final.counts.completed,
            "failed": final.counts.failed,
            "dead": final.counts.dead,
        },
        "result_states": dict(states),
        "dead_letters_listed": dead,
        "every_item_has_a_result": set(seen) == every,
        "duplicates": sum(1 for n in seen.values() if n > 1),
        "rss_mib": {"before": round(rss_before / 1024, 1), "peak": round(peak[0] / 1024, 1)},
        "interactive_idle": _summary(idle),
        "interactive_during_batch": _summary(busy),
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.batch", description=__doc__)
    p.add_argument("--items", type=int, default=BatchBench.items)
    p.add_argument("--fault-rate", type=float, default=BatchBench.fault_rate)
    p.add_argument("--concurrency", type=int, default=BatchBench.concurrency)
    p.add_argument("--out", type=Path, default=Path("bench/results"), help="results folder")
    args = p.parse_args(argv)
    s = BatchBench(items=args.items, fault_rate=args.fault_rate, concurrency=args.concurrency)
    result = asyncio.run(run(s))
    write_json(args.out, result, prefix="batch-")
    print(yaml.safe_dump(result, sort_keys=False))
    ok = result["every_item_has_a_result"] and result["duplicates"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
