"""A call's priority tier through gRPC and the gateway: asked for, defaulted, capped.

API keys of a real key store carry a default and a maximum tier, the tenant has a configured
default, and the tier a call ran at comes back as ``llmesh-priority`` trailing metadata
(the ``x-llmesh-priority`` response header over HTTP).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import httpx
import pytest

from llmesh.gateway.server import start
from llmesh.gateway.settings import GatewaySettings
from llmesh.services.auth import open_key_store
from llmesh.services.common.config import Resilience
from llmesh.services.core.priority import Priority
from llmesh.services.orchestrator.server import serve
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh


@dataclass
class Keyed:
    orchestrator: str
    gateway: str
    plain: str
    """A key of tenant ``acme`` (default tier ``low`` by config) without tiers of its own."""
    pager: str
    """A key of tenant ``ops`` with default ``high`` and maximum ``critical``."""
    database_url: str


@pytest.fixture
async def keyed(mesh: Mesh, tmp_path: Path) -> AsyncIterator[Keyed]:
    assert mesh.config is not None
    database_url = f"sqlite:///{tmp_path}/keys.db"
    store = await open_key_store(database_url)
    try:
        _, plain = await store.create("acme", "plain")
        _, pager = await store.create(
            "ops", "pager", default_priority=Priority.HIGH, max_priority=Priority.CRITICAL
        )
    finally:
        await store.aclose()
    config = replace(
        mesh.config,
        database_url=database_url,
        resilience=Resilience.from_mapping(
            {"queue": {"max_concurrency": 4, "tenant_priority": {"acme": "low", "ops": "normal"}}}
        ),
    )
    server = await serve(config, address="127.0.0.1:0", env=mesh.env())
    gateway = await start(
        replace(
            GatewaySettings.from_config(config),
            orchestrator_address=f"127.0.0.1:{server.port}",
            processor_address=mesh.processor_address,
        )
    )
    try:
        yield Keyed(f"127.0.0.1:{server.port}", gateway.url, plain, pager, database_url)
    finally:
        await gateway.stop()
        await server.stop(1)


async def _grpc_tier(keyed: Keyed, key: str, asked: str | None) -> str:
    metadata = [("authorization", f"Bearer {key}")]
    if asked is not None:
        metadata.append(("llmesh-priority", asked))
    async with grpc.aio.insecure_channel(keyed.orchestrator) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        call = stub.Chat(
            orchestrator_pb2.ChatRequest(
                input=chat_pb2.ChatInput(
                    model="emulator/echo",
                    messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="hi")],
                )
            ),
            metadata=metadata,
            timeout=10,
        )
        await call
        trailers = dict(await call.trailing_metadata())
    return str(trailers["llmesh-priority"])


@pytest.mark.parametrize(
    ("key", "asked", "runs_at"),
    [
        ("plain", None, "low"),  # the tenant's configured default
        ("plain", "high", "normal"),  # capped at a key's default maximum
        ("plain", "batch", "batch"),  # below the maximum: as asked
        ("pager", None, "high"),  # the key's own default beats the tenant's
        ("pager", "critical", "critical"),  # within its maximum
        ("pager", " LOW ", "low"),
    ],
)
async def test_grpc_tier_is_asked_defaulted_and_capped(
    keyed: Keyed, key: str, asked: str | None, runs_at: str
) -> None:
    assert await _grpc_tier(keyed, getattr(keyed, key), asked) == runs_at


async def test_grpc_unknown_tier_is_invalid(keyed: Keyed) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc_tier(keyed, keyed.pager, "urgent")
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "llmesh-priority" in (info.value.details() or "")


async def test_gateway_header_is_mapped_the_same_way(keyed: Keyed) -> None:
    body = {"model": "emulator/echo", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=keyed.gateway, timeout=10) as http:

        async def tier(key: str, asked: str | None) -> httpx.Response:
            headers = {"authorization": f"Bearer {key}"}
            if asked is not None:
                headers["x-llmesh-priority"] = asked
            return await http.post("/v1/chat/completions", json=body, headers=headers)

        capped = await tier(keyed.plain, "critical")
        assert capped.status_code == 200 and capped.headers["x-llmesh-priority"] == "normal"
        granted = await tier(keyed.pager, "critical")
        assert granted.headers["x-llmesh-priority"] == "critical"
        defaulted = await tier(keyed.plain, None)
        assert defaulted.headers["x-llmesh-priority"] == "low"
        bad = await tier(keyed.pager, "urgent")
        assert bad.status_code == 400 and "x-llmesh-priority" in bad.text


async def test_the_ledger_row_records_the_tier(keyed: Keyed) -> None:
    async with grpc.aio.insecure_channel(keyed.orchestrator) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        call = stub.StreamChat(
            orchestrator_pb2.StreamChatRequest(
                input=chat_pb2.ChatInput(
                    model="emulator/echo",
                    messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="hi")],
                )
            ),
            metadata=[("authorization", f"Bearer {keyed.plain}"), ("llmesh-priority", "high")],
            timeout=10,
        )
        events = [event async for event in call]
    row = await ledger_record(keyed.database_url, events[0].start.request_id)
    assert (row.tenant, row.priority) == ("acme", "normal")  # asked high, capped
