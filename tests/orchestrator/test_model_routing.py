"""Capability- and cost-aware choice end to end: a vision call skips a text-only target, a
nearly exhausted budget downgrades to the route's cheaper model, and roles resolve per
tenant, over gRPC and the gateway's /v1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from llmesh.gateway.server import start as start_gateway
from llmesh.gateway.settings import GatewaySettings
from llmesh.services.common.config import RouteConfig
from llmesh.services.common.errors import Reason
from llmesh.services.common.model_settings import ModelCapabilities, ModelSettings
from llmesh.services.common.policy_settings import PolicyConfig
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.orchestrator.server import OrchestratorServer, serve
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
ROUTES = {
    "look": RouteConfig("look", ("emulator/text-only", "emulator/echo")),
    "pricey": RouteConfig("pricey", ("openai/gpt-4o",), downgrade=("openai/gpt-4o-mini",)),
}
MODELS = ModelSettings(
    capabilities={"emulator/text-only": ModelCapabilities(vision=False)},
    roles={"summarize": "emulator/echo", "reason": "openai/o3"},
    tenant_roles={"acme": {"summarize": "openai/gpt-4o-mini"}},
)
BUDGETS = PolicyConfig.from_mapping({"budgets": {"tenants": {"poor": {"daily_usd": 0.01}}}})


@pytest.fixture
async def server(mesh: Mesh, tmp_path: Path) -> AsyncIterator[OrchestratorServer]:
    assert mesh.config is not None
    config = replace(
        mesh.config,
        database_url=f"sqlite:///{tmp_path}/own.db",
        routes=ROUTES,
        models=MODELS,
        policy=BUDGETS,
    )
    started = await serve(config, address="127.0.0.1:0", env=mesh.env())
    yield started
    await started.stop(0.5)


def _input(model: str, *parts: chat_pb2.ContentPart, **kw: Any) -> chat_pb2.ChatInput:
    message = (
        chat_pb2.Message(role=chat_pb2.ROLE_USER, parts=parts)
        if parts
        else chat_pb2.Message(role=chat_pb2.ROLE_USER, content="hello")
    )
    return chat_pb2.ChatInput(model=model, messages=[message], **kw)


def _image() -> list[chat_pb2.ContentPart]:
    return [
        chat_pb2.ContentPart(text="what is this?"),
        chat_pb2.ContentPart(image=chat_pb2.ImagePart(data=PNG, media_type="image/png")),
    ]


async def _chat(
    server: OrchestratorServer, inp: chat_pb2.ChatInput
) -> tuple[Any, list[dict[str, Any]]]:
    """The reply and the attempt trail (the ``llmesh-attempts`` trailer)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        call = stub.Chat(orchestrator_pb2.ChatRequest(input=inp), timeout=10)
        reply = await call
        trailers = dict(await call.trailing_metadata())
    return reply, json.loads(trailers["llmesh-attempts"])


async def _refused(server: OrchestratorServer, inp: chat_pb2.ChatInput) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _chat(server, inp)
    return info.value


async def test_a_vision_call_skips_a_text_only_target(server: OrchestratorServer) -> None:
    reply, attempts = await _chat(server, _input("look", *_image()))
    assert (reply.provider, reply.model) == ("emulator", "echo")
    assert attempts[0] == {
        "target": "emulator/text-only",
        "outcome": "skipped",
        "latency_ms": 0.0,
        "reason": "INVALID_REQUEST",
        "detail": "lacks vision",
    }
    assert [a["outcome"] for a in attempts[1:]] == ["succeeded"]
    text, attempts = await _chat(server, _input("look"))  # text goes to the first target
    assert text.model == "text-only" and len(attempts) == 1
    # a call's own fallbacks are chosen the same way
    fallback = _input("emulator/text-only", *_image(), fallbacks=["emulator/echo"])
    reply, attempts = await _chat(server, fallback)
    assert reply.model == "echo"
    assert [(a["target"], a["outcome"]) for a in attempts] == [
        ("emulator/text-only", "skipped"),
        ("emulator/echo", "succeeded"),
    ]
    text, attempts = await _chat(server, _input("look"))
    assert text.model == "text-only" and len(attempts) == 1

    error = await _refused(server, _input("emulator/text-only", *_image()))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    err = from_rpc_error(error)
    assert err.reason is Reason.INVALID_REQUEST
    assert "emulator/text-only lacks vision" in err.message
    assert err.metadata["capability"] == "vision"


async def test_a_nearly_exhausted_budget_downgrades_to_the_cheaper_model(
    server: OrchestratorServer, tmp_path: Path
) -> None:
    poor = {"tenant": "poor"}
    # gpt-4o's worst case at 400 output tokens is about 0.004 USD, gpt-4o-mini's 0.0003
    reply, attempts = await _chat(server, _input("pricey", max_tokens=400, metadata=poor))
    assert reply.model == "gpt-4o" and len(attempts) == 1
    budgets = server.assembly.budgets
    assert budgets is not None
    await budgets.seed("tenant:poor", 0.008, 0.008)  # 0.002 USD left

    reply, attempts = await _chat(server, _input("pricey", max_tokens=400, metadata=poor))
    assert (reply.provider, reply.model) == ("openai", "gpt-4o-mini")
    assert attempts[0]["target"] == "openai/gpt-4o"
    assert (attempts[0]["outcome"], attempts[0]["reason"]) == ("skipped", "BUDGET_EXCEEDED")
    assert attempts[0]["detail"].endswith("downgraded to openai/gpt-4o-mini")
    assert attempts[1]["target"] == "openai/gpt-4o-mini"
    record = await ledger_record(f"sqlite:///{tmp_path}/own.db", reply.request_id)
    assert (record.route, record.provider, record.model) == ("pricey", "openai", "gpt-4o-mini")
    assert record.downgraded_from == "openai/gpt-4o"

    await budgets.seed("tenant:poor", 0.00999, 0.00999)  # not even the cheaper model fits
    error = await _refused(server, _input("pricey", max_tokens=400, metadata=poor))
    assert from_rpc_error(error).reason is Reason.BUDGET_EXCEEDED
    # a tenant without that budget is never downgraded
    reply, _ = await _chat(server, _input("pricey", max_tokens=400))
    assert reply.model == "gpt-4o"


async def test_roles_resolve_per_tenant_and_an_unknown_role_is_refused(
    server: OrchestratorServer,
) -> None:
    reply, _ = await _chat(server, _input("role:summarize"))
    assert (reply.provider, reply.model) == ("emulator", "echo")
    reply, _ = await _chat(server, _input("role:summarize", metadata={"tenant": "acme"}))
    assert (reply.provider, reply.model) == ("openai", "gpt-4o-mini")
    error = await _refused(server, _input("role:translate"))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown role 'translate'" in (error.details() or "")


async def test_roles_and_the_vision_skip_through_the_gateway_v1(
    server: OrchestratorServer,
) -> None:
    addr = f"127.0.0.1:{server.port}"
    gw = await start_gateway(
        replace(GatewaySettings(), orchestrator_address=addr, processor_address=addr)
    )
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    look = [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}]
    hi = [{"role": "user", "content": "hi"}]
    try:
        async with httpx.AsyncClient(base_url=gw.url) as http:
            role = await http.post(
                "/v1/chat/completions", json={"model": "role:summarize", "messages": hi}
            )
            tenant = await http.post(
                "/v1/chat/completions",
                json={"model": "role:summarize", "messages": hi, "metadata": {"tenant": "acme"}},
            )
            unknown = await http.post(
                "/v1/chat/completions", json={"model": "role:nope", "messages": hi}
            )
            vision = await http.post(
                "/v1/chat/completions", json={"model": "look", "messages": look}
            )
            refused = await http.post(
                "/v1/chat/completions", json={"model": "emulator/text-only", "messages": look}
            )
    finally:
        await gw.stop()
    assert role.status_code == tenant.status_code == 200
    assert _served(role) == "emulator/echo"
    assert _served(tenant) == "openai/gpt-4o-mini"
    assert unknown.status_code == 400 and "unknown role 'nope'" in unknown.text
    assert vision.status_code == 200
    trail = json.loads(vision.headers["x-llmesh-attempts"])
    assert [(a["target"], a["outcome"]) for a in trail] == [
        ("emulator/text-only", "skipped"),
        ("emulator/echo", "succeeded"),
    ]
    assert trail[0]["detail"] == "lacks vision"
    assert refused.status_code == 400 and "lacks vision" in refused.text


def _served(reply: httpx.Response) -> str:
    """The target that answered a /v1 call (the last attempt in ``x-llmesh-attempts``)."""
    return str(json.loads(reply.headers["x-llmesh-attempts"])[-1]["target"])
