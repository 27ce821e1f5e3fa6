"""Money and policy end to end: ledger, keys, budgets, rate limits, caching, over gRPC (budgets
under concurrent calls: `test_pipeline_budgets.py`)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from llmesh.gateway.server import start as start_gateway
from llmesh.gateway.settings import GatewaySettings
from llmesh.services.auth import open_key_store
from llmesh.services.common.errors import Reason
from llmesh.services.common.policy_settings import PolicyConfig
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core import CallStatus
from llmesh.services.orchestrator.server import OrchestratorServer, build_engine, serve
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh, chat_input

LONG = " ".join(f"word{i}" for i in range(1500))  # over every model's cacheable minimum


async def _stream(address: str, inp: chat_pb2.ChatInput, **kw: Any) -> list[Any]:
    async with grpc.aio.insecure_channel(address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        call = stub.StreamChat(orchestrator_pb2.StreamChatRequest(input=inp), timeout=10, **kw)
        return [e async for e in call]


async def _unary(address: str, inp: chat_pb2.ChatInput, **kw: Any) -> Any:
    async with grpc.aio.insecure_channel(address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        return await stub.Chat(orchestrator_pb2.ChatRequest(input=inp), timeout=10, **kw)


# -- the ledger --------------------------------------------------------------------------


async def test_one_record_per_call_including_failures_cuts_and_cancels(mesh: Mesh) -> None:
    assert mesh.config is not None
    url, addr = mesh.config.database_url, mesh.orchestrator_address
    events = await _stream(addr, chat_input("openai/gpt-4o-mini", metadata={"session": "s1"}))
    ok = await ledger_record(url, events[0].start.request_id)
    assert (ok.status, ok.provider, ok.model, ok.session) == (
        CallStatus.OK,
        "openai",
        "gpt-4o-mini",
        "s1",
    )
    assert ok.output_tokens == 2 and not ok.usage_estimated and ok.cost_usd > 0

    await asyncio.to_thread(mesh.set_fault, "ledger-quota", "quota")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _stream(addr, chat_input("openai/ledger-quota"))
    failed = await ledger_record(url, from_rpc_error(info.value).metadata["request_id"])
    assert (failed.status, failed.error_reason) == (CallStatus.ERROR, "QUOTA_EXHAUSTED")
    assert failed.cost_usd == 0

    await asyncio.to_thread(mesh.set_fault, "ledger-cut", "cut", after=2)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _stream(addr, chat_input("openai/ledger-cut", "one two three four five"))
    cut = await ledger_record(url, from_rpc_error(info.value).metadata["request_id"])
    assert cut.status is CallStatus.ERROR and cut.usage_estimated, (
        "a cut OpenAI stream has no usage"
    )
    assert cut.output_tokens > 0 and cut.input_tokens > 0

    await asyncio.to_thread(mesh.set_fault, "ledger-stall", "stall", after=1)
    async with grpc.aio.insecure_channel(addr) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        call = stub.StreamChat(
            orchestrator_pb2.StreamChatRequest(input=chat_input("anthropic/ledger-stall", "a b c")),
            timeout=10,
        )
        request_id = ""
        async for ev in call:
            if ev.WhichOneof("event") == "start":
                request_id = ev.start.request_id
            if ev.WhichOneof("event") == "text_delta":
                break
        call.cancel()
    cancelled = await ledger_record(url, request_id)
    assert cancelled.status is CallStatus.CANCELLED
    assert cancelled.input_tokens > 0, "Anthropic reported input usage before the cancel"


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
async def test_streamed_and_unary_calls_record_identical_usage_and_cost(
    mesh: Mesh, model: str
) -> None:
    assert mesh.config is not None
    url, addr = mesh.config.database_url, mesh.orchestrator_address
    tag = model.split("/")[0]
    inp = chat_pb2.ChatInput(
        model=model,
        messages=[
            chat_pb2.Message(role=chat_pb2.ROLE_SYSTEM, content=f"{tag} context {LONG}"),
            chat_pb2.Message(role=chat_pb2.ROLE_USER, content="first question"),
            chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, content="first answer"),
            chat_pb2.Message(role=chat_pb2.ROLE_USER, content="second question"),
        ],
    )
    await _unary(addr, inp)  # warms the provider's prompt cache
    events = await _stream(addr, inp)
    reply = await _unary(addr, inp)
    streamed = await ledger_record(url, events[0].start.request_id)
    whole = await ledger_record(url, reply.request_id)
    fields = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    assert [getattr(streamed, f) for f in fields] == [getattr(whole, f) for f in fields]
    assert streamed.cache_read_tokens > 0, "cached tokens reach the streamed record too"
    assert streamed.cost_usd == pytest.approx(whole.cost_usd) and streamed.cost_usd > 0
    assert streamed.cache_savings_usd > 0
    assert events[-1].finish.cost_usd == pytest.approx(streamed.cost_usd)


async def test_response_cache_replays_a_stream_at_no_cost(mesh: Mesh) -> None:
    assert mesh.config is not None
    inp = chat_input("openai/gpt-4o-mini", "cache me please", temperature=0.0)
    first = await _stream(mesh.orchestrator_address, inp)
    second = await _stream(mesh.orchestrator_address, inp)
    text = lambda evs: "".join(  # noqa: E731
        e.text_delta.text for e in evs if e.WhichOneof("event") == "text_delta"
    )
    assert text(first) == text(second) == "cache me please"
    assert not first[0].start.cache_hit and second[0].start.cache_hit
    assert not first[-1].finish.cache_hit and second[-1].finish.cache_hit
    assert second[-1].finish.cost_usd == 0
    # a hit reports what the reply is worth: the usage of the call that produced it
    assert first[-1].finish.usage.input_tokens > 0
    assert second[-1].finish.usage == first[-1].finish.usage
    original = await ledger_record(mesh.config.database_url, first[0].start.request_id)
    hit = await ledger_record(mesh.config.database_url, second[0].start.request_id)
    assert hit.cache_hit and hit.cost_usd == 0 and hit.cache_savings_usd > 0
    assert (hit.input_tokens, hit.output_tokens) == (original.input_tokens, original.output_tokens)
    assert not original.cache_hit


async def test_a_unary_cache_hit_reports_the_original_usage(mesh: Mesh) -> None:
    inp = chat_input("openai/gpt-4o-mini", "cache me whole", temperature=0.0)
    first = await _unary(mesh.orchestrator_address, inp)
    second = await _unary(mesh.orchestrator_address, inp)
    assert not first.cache_hit and second.cache_hit
    assert first.usage.input_tokens > 0 and second.usage == first.usage
    assert second.message.content == first.message.content
    assert mesh.config is not None
    hit = await ledger_record(mesh.config.database_url, second.request_id)
    assert hit.cache_hit and hit.input_tokens == first.usage.input_tokens


async def test_the_response_cache_never_crosses_tenants(mesh: Mesh) -> None:
    """Tenant B must not be served the reply generated for tenant A's identical prompt."""
    addr = mesh.orchestrator_address

    def inp(tenant: str) -> chat_pb2.ChatInput:
        return chat_input(
            "openai/gpt-4o-mini", "a tenant's secret", temperature=0.0, metadata={"tenant": tenant}
        )

    first = await _stream(addr, inp("tenant-a"))
    other = await _stream(addr, inp("tenant-b"))
    again = await _stream(addr, inp("tenant-a"))
    assert not first[-1].finish.cache_hit
    assert not other[-1].finish.cache_hit, "tenant-b was served tenant-a's cached reply"
    assert again[-1].finish.cache_hit


async def test_openai_api_marks_a_cache_hit_and_reports_its_usage(mesh: Mesh) -> None:
    body = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "cache me over http"}],
        "temperature": 0,
    }
    async with httpx.AsyncClient(base_url=mesh.gateway_url) as http:
        first = await http.post("/v1/chat/completions", json=body)
        second = await http.post("/v1/chat/completions", json=body)
        streamed = await http.post(
            "/v1/chat/completions",
            json={**body, "stream": True, "stream_options": {"include_usage": True}},
        )
    assert first.status_code == second.status_code == streamed.status_code == 200
    assert "x-llmesh-cache" not in first.headers
    assert second.headers["x-llmesh-cache"] == "hit"
    assert streamed.headers["x-llmesh-cache"] == "hit"
    usage = first.json()["usage"]
    assert usage["prompt_tokens"] > 0 and second.json()["usage"] == usage
    chunks = [
        json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")
    ]
    assert chunks[-1]["usage"] == usage


async def test_llmesh_usage_reports_the_ledger(mesh: Mesh) -> None:
    assert mesh.config is not None
    await _stream(
        mesh.orchestrator_address, chat_input("emulator/echo", metadata={"tenant": "t-cli"})
    )
    await asyncio.sleep(0.2)
    env = dict(os.environ, LLMESH_DATABASE_URL=mesh.config.database_url)
    llmesh = str(Path(sys.executable).parent / "llmesh")
    out = await asyncio.to_thread(
        subprocess.run,
        [llmesh, "usage", "--by", "tenant,model", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    rows = rows["totals"] if isinstance(rows, dict) else rows
    mine = [r for r in rows if r["tenant"] == "t-cli"]
    assert mine and mine[0]["model"] == "emulator/echo" and mine[0]["requests"] >= 1
    table = (
        await asyncio.to_thread(
            subprocess.run, [llmesh, "usage"], capture_output=True, text=True, env=env, timeout=30
        )
    ).stdout
    assert "t-cli" in table


# -- an orchestrator with policies ---------------------------------------------------------

Factory = Callable[..., Awaitable[OrchestratorServer]]


@pytest.fixture
async def orchestrator(mesh: Mesh, tmp_path: Path) -> AsyncIterator[Factory]:
    """Start orchestrators with extra configuration beside the shared mesh."""
    started: list[OrchestratorServer] = []

    async def make(**changes: Any) -> OrchestratorServer:
        assert mesh.config is not None
        changes.setdefault("database_url", f"sqlite:///{tmp_path}/own.db")
        config = replace(mesh.config, **changes)
        server = await serve(config, address="127.0.0.1:0", env=mesh.env())
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop(0.5)


async def test_api_keys_gate_grpc_and_gateway_and_scope_usage(
    orchestrator: Factory, tmp_path: Path
) -> None:
    keys = await open_key_store(f"sqlite:///{tmp_path}/own.db")
    (info_a, key_a) = await keys.create("tenant-a")
    (_, key_b) = await keys.create("tenant-b")
    await keys.aclose()
    server = await orchestrator()
    addr = f"127.0.0.1:{server.port}"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _unary(addr, chat_input("emulator/echo"))
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _unary(
            addr, chat_input("emulator/echo"), metadata=[("authorization", "Bearer " + key_a + "x")]
        )
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert key_a not in (info.value.details() or "")
    for key in (key_a, key_b):
        await _unary(
            addr, chat_input("emulator/echo"), metadata=[("authorization", f"Bearer {key}")]
        )
    gw = await start_gateway(
        replace(GatewaySettings(), orchestrator_address=addr, processor_address=addr)
    )
    try:
        async with httpx.AsyncClient(base_url=gw.url) as http:
            body = {"model": "emulator/echo", "messages": [{"role": "user", "content": "hi"}]}
            denied = await http.post("/v1/chat/completions", json=body)
            allowed = await http.post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key_a}"}
            )
        assert denied.status_code == 401 and allowed.status_code == 200
        assert key_a not in denied.text
    finally:
        await gw.stop()
    await asyncio.sleep(0.2)  # the ledger flushes
    async with grpc.aio.insecure_channel(addr) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        usage = await stub.GetUsage(
            orchestrator_pb2.GetUsageRequest(
                group_by=[orchestrator_pb2.USAGE_GROUPING_TENANT], tenant="tenant-b"
            ),
            metadata=[("authorization", f"Bearer {key_a}")],
            timeout=5,
        )
    assert [t.tenant for t in usage.totals] == ["tenant-a"], "a tenant sees only its own usage"
    assert usage.totals[0].requests == 2
    keys = await open_key_store(f"sqlite:///{tmp_path}/own.db")
    await keys.revoke(info_a.key_id)
    await keys.aclose()
    await asyncio.sleep(6)  # another process revoked it: the key cache expires within 5 s
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _unary(
            addr, chat_input("emulator/echo"), metadata=[("authorization", f"Bearer {key_a}")]
        )
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_non_loopback_bind_without_keys_refuses_to_start(mesh: Mesh, tmp_path: Path) -> None:
    assert mesh.config is not None
    config = replace(mesh.config, database_url=f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(ValueError, match="allow-unauthenticated"):
        await serve(config, address="0.0.0.0:0", engine=build_engine(config, env=mesh.env()))


async def test_budget_exceeded_with_quota_failure(orchestrator: Factory) -> None:
    server = await orchestrator(
        policy=PolicyConfig.from_mapping({"budgets": {"tenants": {"*": {"daily_usd": 0.0005}}}})
    )
    addr = f"127.0.0.1:{server.port}"
    small = chat_input("openai/gpt-4o-mini", "tiny", max_tokens=5)
    await _unary(addr, small)  # a small worst case fits
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _unary(addr, chat_input("openai/gpt-4o-mini", "big"))  # 4096 tokens worst case
    err = from_rpc_error(info.value)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.reason is Reason.BUDGET_EXCEEDED
    assert err.metadata["quota.subject"] == "tenant:default"


async def test_rate_limit_with_retry_info_and_quota_failure(orchestrator: Factory) -> None:
    server = await orchestrator(
        policy=PolicyConfig.from_mapping(
            {"rate_limits": {"tenants": {"*": {"requests_per_minute": 2}}}}
        )
    )
    addr = f"127.0.0.1:{server.port}"
    for _ in range(2):
        await _unary(addr, chat_input("emulator/echo"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _unary(addr, chat_input("emulator/echo"))
    err = from_rpc_error(info.value)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.reason is Reason.RATE_LIMIT_EXCEEDED
    assert err.retry_after is not None and 0 < err.retry_after <= 60
    assert err.metadata["quota.subject"] == "tenant:default"


async def test_cost_capped_routing_picks_the_cheapest_target_that_fits(
    orchestrator: Factory,
) -> None:
    from llmesh.services.common.config import RouteConfig

    server = await orchestrator(
        routes={"pricey": RouteConfig("pricey", ("openai/gpt-4o", "openai/gpt-4o-mini"))}
    )
    addr = f"127.0.0.1:{server.port}"
    reply = await _unary(addr, chat_input("pricey", "hi", max_tokens=100, max_cost_usd=0.0005))
    assert (reply.provider, reply.model) == ("openai", "gpt-4o-mini")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _unary(addr, chat_input("pricey", "hi", max_tokens=100, max_cost_usd=0.0000001))
    assert from_rpc_error(info.value).reason is Reason.BUDGET_EXCEEDED


async def test_postgresql_holds_the_ledger_and_the_keys(
    orchestrator: Factory, postgres_server: str
) -> None:
    """One PostgreSQL URL for a shared deployment: keys and usage both live there."""
    import uuid

    import asyncpg

    schema = f"llmesh_it_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        url = f"{postgres_server}?schema={schema}"
        keys = await open_key_store(url)
        _, key = await keys.create("pg-tenant")
        await keys.aclose()
        server = await orchestrator(database_url=url)
        addr = f"127.0.0.1:{server.port}"
        reply = await _unary(
            addr, chat_input("emulator/echo"), metadata=[("authorization", f"Bearer {key}")]
        )
        rec = await ledger_record(url, reply.request_id)
        assert (rec.tenant, rec.status) == ("pg-tenant", CallStatus.OK)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


async def test_per_target_rate_limit_fails_over_to_the_next_target(
    orchestrator: Factory,
) -> None:
    server = await orchestrator(
        policy=PolicyConfig.from_mapping(
            {"rate_limits": {"targets": {"openai/gpt-4o-mini": {"requests_per_minute": 1}}}}
        )
    )
    addr = f"127.0.0.1:{server.port}"
    first = await _unary(addr, chat_input("openai/gpt-4o-mini", fallbacks=["emulator/echo"]))
    second = await _unary(addr, chat_input("openai/gpt-4o-mini", fallbacks=["emulator/echo"]))
    assert (first.provider, second.provider) == ("openai", "emulator")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _unary(addr, chat_input("openai/gpt-4o-mini"))
    err = from_rpc_error(info.value)
    assert err.reason is Reason.RATE_LIMIT_EXCEEDED
    assert err.metadata["quota.subject"] == "target:openai/gpt-4o-mini"
