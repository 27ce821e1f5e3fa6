"""Fixtures for the gateway's tests: fake upstream services and the gateway on real servers.

`fake_mesh` runs `tests.gateway.fakes` on a real `grpc.aio` server on an ephemeral port;
`gateway` serves the gateway under real uvicorn on another, pointed at it; `http` and
`openai_client` are clients for it (raw httpx, and the official SDK with retries off).

Tests on the whole mesh (`mesh`) run twice: through the gateway (gRPC hop) and on the
direct HTTP path (the same routes served in the orchestrator's process), whose
`Mesh.gateway_url` is then the direct path's URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import openai
import pytest

from llmesh.gateway import GatewaySettings, RunningGateway, start
from llmesh.services.common.config import RouteConfig
from llmesh.services.emulator.thinking import INTERLEAVED_BETA
from tests.gateway.fakes import FakeMesh, start_fake_mesh
from tests.support.mesh import Mesh

INTERLEAVED_ROUTE = "thinker"
"""The route of `interleaved_mesh`: Claude, with the interleaved-thinking beta allowed."""


@pytest.fixture(params=["gateway", "direct"])
def mesh(mesh: Mesh, request: pytest.FixtureRequest) -> Mesh:
    """The session's mesh, reached through the gateway or on the direct HTTP path."""
    if request.param == "gateway":
        return mesh
    return replace(mesh, gateway_url=mesh.direct_url)


@pytest.fixture
async def fake_mesh() -> AsyncIterator[FakeMesh]:
    """Fake orchestrator and processor on one real gRPC server (see `tests.gateway.fakes`)."""
    mesh = await start_fake_mesh()
    yield mesh
    await mesh.running.server.stop(None)


@pytest.fixture
def gateway_settings(fake_mesh: FakeMesh) -> GatewaySettings:
    """Settings pointing the gateway at the fake mesh, with a small body limit."""
    return GatewaySettings(
        orchestrator_address=fake_mesh.address,
        processor_address=fake_mesh.address,
        max_body_bytes=64 * 1024,
        shutdown_grace=5,
    )


@pytest.fixture
async def gateway(gateway_settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    """The gateway under real uvicorn on an ephemeral port."""
    running = await start(gateway_settings)
    yield running
    await running.stop()


@pytest.fixture
async def http(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client for the gateway."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        yield client


@pytest.fixture
async def openai_client(gateway: RunningGateway) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official OpenAI SDK pointed at the gateway, with its own retries off."""
    client = openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0, timeout=10
    )
    yield client
    await client.close()


@pytest.fixture(scope="module")
def interleaved_mesh() -> Iterator[Mesh]:
    """A mesh of its own (per test module) whose `INTERLEAVED_ROUTE` sends Claude requests
    the interleaved-thinking beta header."""
    routes = {
        INTERLEAVED_ROUTE: RouteConfig(
            INTERLEAVED_ROUTE,
            ("anthropic/claude-sonnet-4-6",),
            anthropic_beta=(INTERLEAVED_BETA,),
        )
    }
    mesh = Mesh().start({"routes": routes})
    try:
        yield mesh
    finally:
        mesh.stop()
