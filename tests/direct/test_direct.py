"""The direct HTTP path: the gateway's routes in the orchestrator's process, no gRPC hop.

The gateway's own tests on the whole mesh run on this path too (`tests/gateway/conftest.py`,
the contract cases' ``direct-*`` surfaces); these cover what only the in-process stubs do:
the caller's key, deadline and retry count carried as gRPC metadata would carry them, errors
raised as grpc raises them, and the configuration that turns the path on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from llmesh.gateway.settings import GatewaySettings
from llmesh.services.auth import open_key_store
from llmesh.services.common.config import ConfigError, load_config
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.direct import DirectServer, DirectStub, serve_direct
from llmesh.services.orchestrator.server import OrchestratorServer, serve
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.mesh import Mesh

Factory = Callable[..., Awaitable[tuple[OrchestratorServer, DirectServer]]]
BODY = {"model": "emulator/echo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def direct(mesh: Mesh, tmp_path: Path) -> AsyncIterator[Factory]:
    """Start orchestrators with their direct HTTP path beside the shared mesh."""
    started: list[tuple[OrchestratorServer, DirectServer]] = []

    async def make(**changes: Any) -> tuple[OrchestratorServer, DirectServer]:
        assert mesh.config is not None
        changes.setdefault("database_url", f"sqlite:///{tmp_path}/own.db")
        config = replace(mesh.config, **changes)
        server = await serve(config, address="127.0.0.1:0", env=mesh.env())
        settings = replace(
            GatewaySettings.from_config(config),
            orchestrator_address="in-process",
            processor_address=mesh.processor_address,
        )
        pair = (server, await serve_direct(server, settings))
        started.append(pair)
        return pair

    yield make
    for server, http in started:
        await http.stop()
        await server.stop(0.5)


async def test_api_keys_gate_the_direct_path_as_they_gate_grpc(
    direct: Factory, tmp_path: Path
) -> None:
    keys = await open_key_store(f"sqlite:///{tmp_path}/own.db")
    (_, key) = await keys.create("tenant-a")
    await keys.aclose()
    server, http_path = await direct()
    async with httpx.AsyncClient(base_url=http_path.url, timeout=10) as http:
        denied = await http.post("/v1/chat/completions", json=BODY)
        wrong = await http.post(
            "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}x"}
        )
        allowed = await http.post(
            "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}
        )
    assert (denied.status_code, wrong.status_code, allowed.status_code) == (401, 401, 200)
    assert key not in denied.text + wrong.text
    await asyncio.sleep(0.2)  # the ledger flushes
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        usage = await orchestrator_pb2_grpc.OrchestratorServiceStub(channel).GetUsage(
            orchestrator_pb2.GetUsageRequest(group_by=[orchestrator_pb2.USAGE_GROUPING_TENANT]),
            metadata=[("authorization", f"Bearer {key}")],
            timeout=5,
        )
    assert [(t.tenant, t.requests) for t in usage.totals] == [("tenant-a", 1)]


async def test_the_timeout_header_is_the_call_s_deadline(mesh: Mesh) -> None:
    mesh.set_fault("direct-stall", "stall", after=0)
    async with httpx.AsyncClient(base_url=mesh.direct_url, timeout=10) as http:
        r = await http.post(
            "/v1/chat/completions",
            json={**BODY, "model": "openai/direct-stall"},
            headers={"x-llmesh-timeout": "0.3"},
        )
    assert r.status_code == 504, r.text
    assert "deadline" in r.json()["error"]["message"]


def _chat(model: str) -> orchestrator_pb2.ChatRequest:
    message = chat_pb2.Message(role=chat_pb2.ROLE_USER, content="a b c")
    return orchestrator_pb2.ChatRequest(input=chat_pb2.ChatInput(model=model, messages=[message]))


def _stub(server: OrchestratorServer) -> Any:
    return DirectStub(
        orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"], server.servicer
    )


async def test_errors_are_the_ones_grpc_raises(direct: Factory) -> None:
    """The same bad call over gRPC and in-process: the same status, message and reason."""
    server, _ = await direct()
    request = _chat("nowhere/no-such-model")
    with pytest.raises(grpc.aio.AioRpcError) as in_process:
        await _stub(server).Chat(request, timeout=5)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as wire:
            await orchestrator_pb2_grpc.OrchestratorServiceStub(channel).Chat(request, timeout=5)
    assert in_process.value.code() == wire.value.code() != grpc.StatusCode.OK
    ours, theirs = from_rpc_error(in_process.value), from_rpc_error(wire.value)
    assert (ours.reason, ours.message) == (theirs.reason, theirs.message)
    stream = _stub(server).StreamChat(
        orchestrator_pb2.StreamChatRequest(input=request.input), timeout=5
    )
    with pytest.raises(grpc.aio.AioRpcError) as streamed:
        await stream.read()
    assert from_rpc_error(streamed.value).reason == theirs.reason


async def test_a_reply_has_its_trail_as_trailing_metadata(direct: Factory) -> None:
    server, _ = await direct()
    call = _stub(server).Chat(_chat("emulator/echo"), timeout=5)
    reply = await call
    assert reply.message.content and reply.request_id
    assert "llmesh-attempts" in dict(await call.trailing_metadata())
    stream = _stub(server).StreamChat(
        orchestrator_pb2.StreamChatRequest(input=_chat("emulator/echo").input), timeout=5
    )
    kinds = [event.WhichOneof("event") async for event in stream]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert await stream.read() is grpc.aio.EOF
    assert "llmesh-attempts" in dict(await stream.trailing_metadata())


async def _disconnects(mesh: Mesh, model: str) -> int:
    stats = await asyncio.to_thread(mesh.stats)
    return int(stats.get("by_model", {}).get(model, {}).get("disconnects", 0))


async def _wait_disconnect(mesh: Mesh, model: str, before: int) -> None:
    for _ in range(500):
        if await _disconnects(mesh, model) > before:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the upstream never saw the cancellation")


async def test_cancelling_a_stream_closes_the_upstream(direct: Factory, mesh: Mesh) -> None:
    model = "direct-stub-stall"
    await asyncio.to_thread(mesh.set_fault, model, "stall", after=1)
    before = await _disconnects(mesh, model)
    server, _ = await direct()
    stream = _stub(server).StreamChat(
        orchestrator_pb2.StreamChatRequest(input=_chat(f"openai/{model}").input), timeout=10
    )
    while (await stream.read()).WhichOneof("event") != "text_delta":
        pass
    assert stream.cancel()
    await _wait_disconnect(mesh, model, before)


async def test_a_v1_client_that_goes_away_cancels_the_call(mesh: Mesh) -> None:
    model = "direct-sse-stall"
    await asyncio.to_thread(mesh.set_fault, model, "stall", after=1)
    before = await _disconnects(mesh, model)
    body = {**BODY, "model": f"openai/{model}", "stream": True}
    async with (
        httpx.AsyncClient(base_url=mesh.direct_url, timeout=10) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if '"content"' in line:
                break
    await _wait_disconnect(mesh, model, before)


def test_the_configuration_turns_the_path_on() -> None:
    assert load_config(None, env={}).orchestrator_http_port == 0, "off by default"
    config = load_config(None, env={"LLMESH_ORCHESTRATOR_HTTP_PORT": "8090"})
    assert (config.orchestrator_http_host, config.orchestrator_http_port) == ("127.0.0.1", 8090)


def test_the_configuration_file_section(tmp_path: Path) -> None:
    path = tmp_path / "llmesh.yaml"
    path.write_text("orchestrator:\n  http: {host: 0.0.0.0, port: 8090}\n")
    config = load_config(path, env={})
    assert (config.orchestrator_http_host, config.orchestrator_http_port) == ("0.0.0.0", 8090)
    path.write_text("orchestrator:\n  http: 8090\n")
    with pytest.raises(ConfigError, match=r"^orchestrator\.http: expected a mapping"):
        load_config(path, env={})


async def test_health_and_readiness_answer_from_the_orchestrator(mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=mesh.direct_url, timeout=10) as http:
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
    assert health.status_code == 200, health.text
    assert ready.status_code == 200, ready.text


async def test_a_stream_cut_by_its_deadline_ends_with_an_error(mesh: Mesh) -> None:
    mesh.set_fault("direct-stream-stall", "stall", after=1)
    body = {**BODY, "model": "openai/direct-stream-stall", "stream": True}
    async with httpx.AsyncClient(base_url=mesh.direct_url, timeout=10) as http:
        r = await http.post("/v1/chat/completions", json=body, headers={"x-llmesh-timeout": "0.5"})
    assert r.status_code == 200
    last = [line for line in r.text.splitlines() if line.startswith("data:")][-1]
    assert "deadline" in last and "[DONE]" not in last, r.text
