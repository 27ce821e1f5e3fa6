"""Three orchestrator replicas behind two gateways share their state through Redis and
PostgreSQL: a budget, a rate limit and a breaker hold across all of them, and the ledger
has one row per call."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import asyncpg
import grpc
import httpx
import pytest

from llmesh.services.common.errors import Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.replicas import BUDGET_USD, RATE_PER_MINUTE, Fleet


def _body(model: str = "emulator/echo", text: str = "hello there", **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}


def _input(model: str) -> chat_pb2.ChatInput:
    return chat_pb2.ChatInput(
        model=model, messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="hi")]
    )


async def _calls(fleet: Fleet, key: str, n: int, **body: Any) -> list[httpx.Response]:
    """`n` concurrent calls, spread over the gateways in turn."""
    urls = itertools.cycle(fleet.gateway_urls)
    headers = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=400)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{next(urls)}/v1/chat/completions", json=_body(**body), headers=headers
                )
                for _ in range(n)
            )
        )


async def _ledger(fleet: Fleet, tenant: str) -> list[asyncpg.Record]:
    await asyncio.sleep(0.5)  # several flush intervals: the writers have flushed
    conn = await asyncpg.connect(fleet.postgres_url)
    try:
        return await conn.fetch(
            f'SELECT * FROM "{fleet.schema}".usage_records WHERE tenant = $1', fleet.tenant(tenant)
        )
    finally:
        await conn.close()


def _code(r: httpx.Response) -> str:
    return str(r.json().get("error", {}).get("code")) if r.status_code != 200 else "ok"


async def test_200_concurrent_calls_never_overshoot_one_budget(fleet: Fleet) -> None:
    replies = await _calls(
        fleet, fleet.keys["budget"], 200, text=" ".join(["word"] * 40), max_tokens=4
    )
    codes = [_code(r) for r in replies]
    ok = codes.count("ok")
    assert ok > 0 and set(codes) <= {"ok", "budget_exceeded"}, set(codes)
    rows = await _ledger(fleet, "budget")
    spent = sum(r["cost_usd"] for r in rows if r["status"] == "ok")
    assert 0 < spent <= BUDGET_USD
    assert codes.count("budget_exceeded") > 0
    assert len(rows) == ok  # the refused calls reached no provider and booked nothing


async def test_a_rate_limit_is_global_across_replicas(fleet: Fleet) -> None:
    replies = await _calls(fleet, fleet.keys["rate"], 30)
    codes = [_code(r) for r in replies]
    # one bucket in Redis: its RATE_PER_MINUTE requests (plus at most one refilled while
    # the calls run), not RATE_PER_MINUTE per replica
    assert RATE_PER_MINUTE <= codes.count("ok") <= RATE_PER_MINUTE + 1, codes
    assert set(codes) == {"ok", "rate_limit_exceeded"}, set(codes)


async def test_a_breaker_opened_by_one_replica_stops_calls_on_all(fleet: Fleet) -> None:
    model = f"down-{fleet.run}"
    fleet.set_fault(model, "server_error", times=3)  # then the provider is fine again
    first, *others = fleet.orchestrator_addresses
    metadata = (("authorization", f"Bearer {fleet.keys['breaker']}"),)
    request = orchestrator_pb2.ChatRequest(input=_input(f"emulator/{model}"))
    async with grpc.aio.insecure_channel(first) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        for _ in range(3):  # fail_max failures, all on the first replica
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.Chat(request, metadata=metadata, timeout=10)
            assert from_rpc_error(failed.value).reason is Reason.UPSTREAM_UNAVAILABLE
    for address in others:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Chat(request, metadata=metadata, timeout=10)
            assert from_rpc_error(refused.value).reason is Reason.CIRCUIT_OPEN


async def test_the_ledger_has_exactly_one_row_per_call(fleet: Fleet) -> None:
    replies = await _calls(fleet, fleet.keys["ledger"], 60)
    assert [r.status_code for r in replies] == [200] * 60
    ids = sorted(r.headers["x-request-id"] for r in replies)
    rows = await _ledger(fleet, "ledger")
    assert sorted(r["request_id"] for r in rows) == ids
