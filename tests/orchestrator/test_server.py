"""The orchestrator's gRPC server against the emulator through the official SDKs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmesh.services.common.errors import Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.mesh import Mesh, chat_input


async def _disconnects(mesh: Mesh, model: str) -> int:
    stats = await asyncio.to_thread(mesh.stats)
    return int(stats.get("by_model", {}).get(model, {}).get("disconnects", 0))


async def test_health_is_serving(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ("", "llmesh.v1.OrchestratorService"):
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


async def test_list_models(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        resp = await stub.ListModels(orchestrator_pb2.ListModelsRequest(), timeout=5)
    names = [m.name for m in resp.models]
    assert "emulator/echo" in names and "openai/gpt-4o-mini" in names
    assert names == sorted(names)


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
async def test_unary_and_stream_agree(mesh: Mesh, model: str) -> None:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        reply = await stub.Chat(orchestrator_pb2.ChatRequest(input=chat_input(model)), timeout=10)
        events = [
            e
            async for e in stub.StreamChat(
                orchestrator_pb2.StreamChatRequest(input=chat_input(model)), timeout=10
            )
        ]
    text = "".join(e.text_delta.text for e in events if e.WhichOneof("event") == "text_delta")
    finish = events[-1].finish
    assert reply.message.content == text == "hello there"
    assert reply.usage == finish.usage
    assert reply.finish_reason == finish.reason == chat_pb2.FINISH_REASON_STOP
    assert reply.request_id.startswith("req_") and events[0].start.request_id.startswith("req_")
    assert reply.request_id != events[0].start.request_id


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_client_cancel_reaches_the_upstream(mesh: Mesh, provider: str) -> None:
    """Cancelling the gRPC call closes the upstream HTTP stream (emulator disconnect counter)."""
    model = f"cancel-{provider}"
    await asyncio.to_thread(mesh.set_fault, model, "stall", after=1)
    best = float("inf")
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        for _ in range(3):  # a shared machine can stall once; the bound must hold at least once
            before = await _disconnects(mesh, model)
            call = stub.StreamChat(
                orchestrator_pb2.StreamChatRequest(
                    input=chat_input(f"{provider}/{model}", "a b c d")
                ),
                timeout=30,
            )
            async for ev in call:
                if ev.WhichOneof("event") == "text_delta":
                    break
            started = time.monotonic()
            call.cancel()
            while await _disconnects(mesh, model) == before:
                assert time.monotonic() - started < 2.0, "upstream never saw the cancellation"
                await asyncio.sleep(0.005)
            best = min(best, time.monotonic() - started)
            if best <= 0.1:
                break
    assert best <= 0.1, f"cancellation took {best * 1000:.0f} ms to reach the upstream"


async def test_deadline_is_carried_to_the_upstream(mesh: Mesh) -> None:
    model = "deadline-openai"
    await asyncio.to_thread(mesh.set_fault, model, "timeout")
    before = await _disconnects(mesh, model)
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Chat(
                orchestrator_pb2.ChatRequest(input=chat_input(f"openai/{model}")), timeout=0.3
            )
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    started = time.monotonic()
    while await _disconnects(mesh, model) == before:
        assert time.monotonic() - started < 2.0, "the upstream request outlived the deadline"
        await asyncio.sleep(0.01)


async def test_oversized_request_is_invalid_and_server_keeps_serving(mesh: Mesh) -> None:
    assert mesh.config is not None
    big = "x" * (mesh.config.max_message_bytes + 1)
    async with grpc.aio.insecure_channel(
        mesh.orchestrator_address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Chat(
                orchestrator_pb2.ChatRequest(input=chat_input("emulator/echo", big)), timeout=10
            )
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        err = from_rpc_error(info.value)
        assert err.reason is Reason.INVALID_REQUEST and err.violations[0].field == "input"
        reply = await stub.Chat(
            orchestrator_pb2.ChatRequest(input=chat_input("emulator/echo")), timeout=10
        )
        assert reply.message.content == "hello there"


async def test_garbage_bytes_do_not_hurt_the_server(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        raw = ch.unary_unary("/llmesh.v1.OrchestratorService/Chat")
        with pytest.raises(grpc.aio.AioRpcError):
            await raw(b"\xff\xff\xff\xff not a protobuf", timeout=5)
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        reply = await stub.Chat(
            orchestrator_pb2.ChatRequest(input=chat_input("emulator/echo")), timeout=10
        )
        assert reply.message.content == "hello there"


async def test_missing_input_is_invalid(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Chat(orchestrator_pb2.ChatRequest(), timeout=5)
    err = from_rpc_error(info.value)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.violations] == ["input"]


@pytest.mark.parametrize("method", ["Chat", "StreamChat"])
async def test_garbage_bytes_to_a_chat_method_are_an_invalid_request(
    mesh: Mesh, method: str
) -> None:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        path = f"/llmesh.v1.OrchestratorService/{method}"
        call = (ch.unary_unary if method == "Chat" else ch.unary_stream)(path)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            reply = call(b"\xff\xff\xff\xff not a protobuf", timeout=5)
            if method == "Chat":
                await reply
            else:
                async for _ in reply:
                    pass
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    err = from_rpc_error(info.value)
    assert err.reason is Reason.INVALID_REQUEST
    assert err.metadata["message_type"].startswith("llmesh.v1.")


def test_python_dash_m_orchestrator_runs_it_alone_and_refuses_a_network_bind(
    tmp_path: Path,
) -> None:
    (tmp_path / "llmesh.yaml").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "llmesh.services.orchestrator"],
        env={
            **os.environ,
            "LLMESH_CONFIG": str(tmp_path / "llmesh.yaml"),
            "LLMESH_DATABASE_URL": f"sqlite:///{tmp_path}/keys.db",
            "LLMESH_ORCHESTRATOR_ADDRESS": "0.0.0.0:0",
            "LLMESH_LOG_LEVEL": "WARNING",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("python -m llmesh.services.orchestrator: ")
    assert "orchestrator: refusing to listen on 0.0.0.0 without authentication" in line
