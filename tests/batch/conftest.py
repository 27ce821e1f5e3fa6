"""Fixtures: an emulator, its admin client, and resolved providers pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from llmesh.services.batch.native import NativeBatches, NativeState, NativeStatus
from llmesh.services.common.provider_settings import ProviderConfig, ResolvedProvider
from llmesh.services.emulator import EmulatorSettings, start


@pytest.fixture
async def emulator() -> AsyncIterator[str]:
    runner, port = await start(EmulatorSettings(host="127.0.0.1", port=0))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def admin(emulator: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emulator, timeout=10) as client:
        yield client


def resolved(kind: str, base_url: str) -> ResolvedProvider:
    """A provider of `kind` named after it, at `base_url`."""
    return ResolvedProvider(ProviderConfig(kind, kind), base_url, "sk-test-key-1234", False)


Until = Callable[[NativeBatches, str, NativeState], Awaitable[NativeStatus]]


@pytest.fixture
def until() -> Until:
    """Poll a batch's status until it reaches a state (for up to ten seconds)."""

    async def poll(client: NativeBatches, batch_id: str, state: NativeState) -> NativeStatus:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            status = await client.status(batch_id)
            if status.state is state or loop.time() > deadline:
                return status
            await asyncio.sleep(0.01)

    return poll
