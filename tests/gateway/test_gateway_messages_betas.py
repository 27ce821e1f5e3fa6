"""Anthropic beta features end to end: a route that allows a beta serves a Messages call
asking for it (to its Anthropic target); the same beta on another route is a 400 naming the
header, before anything is sent."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from llmesh.services.common.config import RouteConfig
from tests.support.mesh import Mesh

BETA = "context-1m-2025-08-07"


@pytest.fixture(scope="module")
def beta_mesh() -> Iterator[Mesh]:
    routes = {
        "long-context": RouteConfig(
            "long-context", ("anthropic/claude-sonnet-4-6",), anthropic_beta=(BETA,)
        ),
        "plain": RouteConfig("plain", ("anthropic/claude-sonnet-4-6",)),
    }
    mesh = Mesh().start({"routes": routes})
    try:
        yield mesh
    finally:
        mesh.stop()


async def test_a_beta_the_route_allows_is_served(beta_mesh: Mesh) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=beta_mesh.gateway_url, api_key="unused", max_retries=0
    ) as client:
        reply = await client.messages.create(
            model="long-context",
            max_tokens=64,
            messages=[{"role": "user", "content": "hello there"}],
            extra_headers={"anthropic-beta": BETA},
        )
        served = beta_mesh.stats()["requests"]
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(
                model="plain",
                max_tokens=64,
                messages=[{"role": "user", "content": "hello there"}],
                extra_headers={"anthropic-beta": BETA},
            )
    assert reply.content[0].text == "hello there"  # type: ignore[union-attr]
    assert "anthropic-beta" in info.value.message and "'plain'" in info.value.message
    assert beta_mesh.stats()["requests"] == served  # the refused call reached no target
