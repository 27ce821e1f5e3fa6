"""Budgets under concurrency, end to end over gRPC: what a call can cost is held before it is
spent, so concurrent calls, mid-stream restarts and hedges cannot overrun a tenant's cap, and
the ledger books what the budget manager counted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from llmesh.services.common.policy_settings import PolicyConfig
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core import CallStatus
from llmesh.services.ledger import open_store
from llmesh.services.orchestrator.server import build_engine, serve
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh, chat_input

Calls = Callable[[str], Awaitable[list[str]]]
TENANT = "spend-tenant"
MILLI = 1000.0  # USD per million tokens: a tenth of a cent a token, so costs read easily


async def _booked(mesh: Mesh, tmp_path: Path, policy: dict[str, Any], calls: Calls) -> float:
    """Run `calls` against an orchestrator of its own; the spend it booked, checked twice:
    in the budget manager and in the ledger (flushed by the shutdown)."""
    assert mesh.config is not None
    url = f"sqlite:///{tmp_path}/spend.db"
    config = replace(mesh.config, database_url=url, policy=PolicyConfig.from_mapping(policy))
    server = await serve(config, address="127.0.0.1:0", engine=build_engine(config, env=mesh.env()))
    try:
        outcomes = await calls(f"127.0.0.1:{server.port}")
        budgets = server.assembly.budgets
        assert budgets is not None
        spent_today, _ = await budgets.spent(f"tenant:{TENANT}")
    finally:
        await server.stop(0.5)
    assert outcomes and all(o.startswith(("ok", "BUDGET_EXCEEDED")) for o in outcomes), outcomes
    store = await open_store(url)
    try:
        ledger = sum(r.cost_usd for r in await store.totals([], tenant=TENANT))
    finally:
        await store.aclose()
    assert ledger == pytest.approx(spent_today)
    return ledger


async def _outcome(address: str, inp: chat_pb2.ChatInput) -> str:
    """``ok`` or the error reason of one streamed call, with the request id of a call
    that failed after output (``BUDGET_EXCEEDED stopped req_...``)."""
    inp.metadata["tenant"] = TENANT
    received: list[Any] = []
    try:
        async with grpc.aio.insecure_channel(address) as ch:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
            request = orchestrator_pb2.StreamChatRequest(input=inp)
            async for event in stub.StreamChat(request, timeout=10):
                received.append(event)
    except grpc.aio.AioRpcError as err:
        error = from_rpc_error(err)
        if any(e.WhichOneof("event") == "text_delta" for e in received):
            return f"{error.reason.value} stopped {error.metadata['request_id']}"
        return error.reason.value
    events = received
    assert events[-1].WhichOneof("event") == "finish"
    return "ok"


def _concurrently(n: int, make: Callable[[], chat_pb2.ChatInput]) -> Calls:
    async def run(address: str) -> list[str]:
        return list(await asyncio.gather(*(_outcome(address, make()) for _ in range(n))))

    return run


@pytest.mark.parametrize("limit", [None, 8000], ids=["unknown-limit", "known-limit"])
async def test_long_replies_without_max_tokens_stay_within_the_cap(
    mesh: Mesh, tmp_path: Path, limit: int | None
) -> None:
    """Each reply is 6,000 tokens ($6): more than the 4,096 once assumed for every call."""
    model = f"spend-long-{limit}"
    price: dict[str, float] = {"input": 0.0, "output": MILLI}
    if limit is not None:
        price["max_output_tokens"] = limit
    await asyncio.to_thread(mesh.set_fault, model, "stall", after=1, stall_ms=300)
    cap = 20.0
    policy = {
        "prices": {f"openai/{model}": price},
        "budgets": {"tenants": {TENANT: {"daily_usd": cap}}},
    }
    text = " ".join(["w"] * 6000)
    outcomes: list[str] = []

    async def run(address: str) -> list[str]:
        calls = _concurrently(10, lambda: chat_input(f"openai/{model}", text))
        outcomes.extend(await calls(address))
        return outcomes

    spent = await _booked(mesh, tmp_path, policy, run)
    assert 0 < spent <= cap
    stopped = [o.split()[-1] for o in outcomes if " stopped " in o]
    if limit is None:  # four calls held 4,096 tokens each, and at most $20 could be spent
        assert stopped, outcomes
    for request_id in stopped:  # a stopped reply is billed for what it produced
        record = await ledger_record(f"sqlite:///{tmp_path}/spend.db", request_id)
        assert (record.status, record.error_reason) == (CallStatus.ERROR, "BUDGET_EXCEEDED")
        assert record.output_tokens > 0 and record.cost_usd > 0


async def test_a_mid_stream_restart_is_reserved_before_it_starts(
    mesh: Mesh, tmp_path: Path
) -> None:
    """The first target is cut after 250 of 300 tokens; the restart needs money of its own."""
    await asyncio.to_thread(mesh.set_fault, "spend-cut", "cut", after=250)
    await asyncio.to_thread(mesh.set_fault, "spend-restart", "stall", after=1, stall_ms=300)
    cap = 0.9  # three calls' worst case of one attempt each
    policy = {
        "prices": {
            "openai/spend-cut": {"input": 0.0, "output": MILLI},
            "openai/spend-restart": {"input": 0.0, "output": MILLI},
        },
        "budgets": {"tenants": {TENANT: {"daily_usd": cap}}},
    }
    text = " ".join(["w"] * 300)

    def make() -> chat_pb2.ChatInput:
        return chat_input(
            "openai/spend-cut",
            text,
            max_tokens=300,
            fallbacks=["openai/spend-restart"],
            mid_stream_policy=chat_pb2.MID_STREAM_POLICY_RESTART,
        )

    spent = await _booked(mesh, tmp_path, policy, _concurrently(6, make))
    assert 0 < spent <= cap


async def test_a_hedge_is_reserved_before_it_races(mesh: Mesh, tmp_path: Path) -> None:
    """The primary answers late; a hedge that the budget cannot hold is not raced."""
    await asyncio.to_thread(mesh.set_fault, "spend-slow", "stall", after=0, stall_ms=400)
    words = 200
    policy = {
        "prices": {
            "openai/spend-slow": {"input": MILLI, "output": 0.0},
            "openai/spend-hedge": {"input": MILLI, "output": 0.0},
        },
        "budgets": {"tenants": {TENANT: {"daily_usd": 1.5}}},  # two primaries, no hedge
    }
    text = " ".join(["w"] * words)

    def make() -> chat_pb2.ChatInput:
        inp = chat_input("openai/spend-slow", text, max_tokens=10, fallbacks=["openai/spend-hedge"])
        inp.hedge.enabled = True
        inp.hedge.delay.FromNanoseconds(50_000_000)
        return inp

    calls = _concurrently(12, make)
    outcomes: list[str] = []

    async def run(address: str) -> list[str]:
        outcomes.extend(await calls(address))
        return outcomes

    spent = await _booked(mesh, tmp_path, policy, run)
    assert spent <= 1.5
    assert "ok" in outcomes  # the primaries answered, without their hedges
