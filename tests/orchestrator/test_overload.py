"""Overload over loopback: a target limited to N calls at once, offered 4N callers of mixed
tiers, keeps its critical calls' queue wait short by shedding the low ones.

The emulator answers after `LATENCY` seconds; the orchestrator allows `N` calls in flight
and `N` waiting; every caller calls again as soon as its call ends, for `DURATION` seconds.
The facts asserted are structural (no critical call fails, queued low calls are shed, the
lower the tier the fewer of its calls succeed, every failure is QUEUE_FULL with a
retry-after) plus one generous bound on the critical calls' p99 queue wait, in units of
the calls' own service time, so a slow machine moves both alike; the measured figures are
printed (``pytest -s``) for the README.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import grpc
import pytest

from llmesh.services.common.config import EmulatorConfig, Resilience
from llmesh.services.common.errors import Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core.priority import Priority
from llmesh.services.emulator.app import start as start_emulator
from llmesh.services.emulator.settings import EmulatorSettings, Latency
from llmesh.services.orchestrator.attempts import percentile
from llmesh.services.orchestrator.server import serve
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.mesh import Mesh

N = 4
"""Calls the target runs at once (and calls that may wait for it)."""
LATENCY = 0.1
"""Seconds the emulator takes to its first token."""
CALLERS = {
    Priority.CRITICAL: N // 2,
    Priority.HIGH: N,
    Priority.NORMAL: N,
    Priority.LOW: N + N // 2,
}
"""Concurrent callers per tier: 4N in all, for N slots and N queue places."""
DURATION = 2.0
"""Seconds every caller keeps calling, one call after the other."""
PAUSE = 0.02
"""Seconds a caller pauses after a failed call before its next one (no busy loop)."""
CRITICAL_WAIT_BOUND = 3
"""Generous, in service times (a call's time less its queue wait, p99 over every call that
succeeded): a critical caller is never behind more than N/2 - 1 others for N slots, so it
waits for one slot, freed within one service time (measured p99: about one LATENCY, the
service time a little over it; see the README). Waiting behind lower tiers would take
several."""


@dataclass
class Tally:
    waits: list[float] = field(default_factory=list)
    """Queue waits of the calls that succeeded, in seconds."""
    services: list[float] = field(default_factory=list)
    """Their times less their queue waits (the time they held a slot, and the call path)."""
    shed: int = 0
    """Calls evicted from the queue for a higher tier."""
    refused: int = 0
    """Calls refused on arrival (a full queue, nothing lower to evict)."""

    @property
    def failed(self) -> int:
        return self.shed + self.refused


@pytest.fixture
async def overloaded(mesh: Mesh) -> AsyncIterator[str]:
    assert mesh.config is not None
    runner, port = await start_emulator(
        EmulatorSettings(host="127.0.0.1", port=0, default_latency=Latency(ttft_ms=LATENCY * 1000))
    )
    config = replace(
        mesh.config,
        emulator=EmulatorConfig("127.0.0.1", port),
        resilience=Resilience.from_mapping(
            {
                "retry": {"max_attempts": 1},
                "queue": {"max_concurrency": N, "max_queue": N, "queue_timeout": 30},
            }
        ),
    )
    server = await serve(config, address="127.0.0.1:0", env=mesh.env())
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(1)
        await runner.cleanup()


async def _caller(
    stub: orchestrator_pb2_grpc.OrchestratorServiceStub, tier: Priority, tally: Tally, until: float
) -> None:
    request = orchestrator_pb2.ChatRequest(
        input=chat_pb2.ChatInput(
            model="emulator/echo",
            messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="overload")],
        )
    )
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        call = stub.Chat(request, metadata=[("llmesh-priority", tier.label)], timeout=60)
        began = loop.time()
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            err = from_rpc_error(exc)
            assert err.reason is Reason.QUEUE_FULL and err.retry_after is not None, err
            assert err.metadata["priority"] == tier.label
            if err.metadata.get("shed") == "true":
                tally.shed += 1
            else:
                tally.refused += 1
            await asyncio.sleep(PAUSE)
            continue
        trailers = dict(await call.trailing_metadata())
        assert trailers["llmesh-priority"] == tier.label
        wait = float(trailers.get("llmesh-queue-ms", "0")) / 1000
        tally.waits.append(wait)
        tally.services.append(loop.time() - began - wait)


async def test_overload_sheds_low_calls_and_keeps_critical_waits_short(overloaded: str) -> None:
    tallies = {tier: Tally() for tier in CALLERS}
    async with grpc.aio.insecure_channel(overloaded) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        until = asyncio.get_running_loop().time() + DURATION
        await asyncio.gather(
            *(
                _caller(stub, tier, tallies[tier], until)
                for tier, count in CALLERS.items()
                for _ in range(count)
            )
        )
    for tier, t in tallies.items():
        p50, p99 = percentile(t.waits, 50), percentile(t.waits, 99)
        print(
            f"{tier.label:>8}: {len(t.waits)} ok, {t.shed} shed, {t.refused} refused;"
            f" queue wait p50 {1000 * (p50 or 0):.0f} ms, p99 {1000 * (p99 or 0):.0f} ms"
        )
    critical, low = tallies[Priority.CRITICAL], tallies[Priority.LOW]
    assert critical.failed == 0 and critical.waits  # never shed, never refused
    assert low.shed > 0  # the load was an overload: queued low calls were shed
    ok = {p: len(t.waits) / (len(t.waits) + t.failed) for p, t in tallies.items()}
    assert ok[Priority.LOW] < ok[Priority.NORMAL] < ok[Priority.CRITICAL] == 1.0
    critical_p99 = percentile(critical.waits, 99)
    service_p99 = percentile([s for t in tallies.values() for s in t.services], 99)
    print(f"service time p99 {1000 * (service_p99 or 0):.0f} ms")
    assert critical_p99 is not None and service_p99 is not None
    assert critical_p99 < CRITICAL_WAIT_BOUND * service_p99, (critical_p99, service_p99)
