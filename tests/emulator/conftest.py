"""Fixtures: an emulator on ``127.0.0.1:<ephemeral>`` and the official SDKs pointed at it.

`emulator` is the base URL of a fresh emulator (its own counters, cache and fault rules);
`oai` / `ant` are ``AsyncOpenAI`` / ``AsyncAnthropic`` clients without retries; `http` is a
plain ``httpx.AsyncClient`` for raw wire checks and the admin endpoints; `stats_when` polls
``/emulator/stats`` until a condition holds (for up to a second).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest

from llmesh.services.emulator import EmulatorSettings, start
from tests.emulator.helpers import StatsWhen


@pytest.fixture
def settings() -> EmulatorSettings:
    """The settings `emulator` starts with; override in a module to change them."""
    return EmulatorSettings(host="127.0.0.1", port=0)


@pytest.fixture
async def emulator(settings: EmulatorSettings) -> AsyncIterator[str]:
    runner, port = await start(settings)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def oai(emulator: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{emulator}/v1",
        api_key="sk-test-key-1234",
        max_retries=0,
        timeout=10,
        http_client=openai.DefaultAsyncHttpxClient(verify=False),  # plain HTTP: skip CA loading
    ) as client:
        yield client


@pytest.fixture
async def ant(emulator: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=emulator,
        api_key="sk-ant-test",
        max_retries=0,
        timeout=10,
        http_client=anthropic.DefaultAsyncHttpxClient(verify=False),
    ) as client:
        yield client


@pytest.fixture
async def http(emulator: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emulator, timeout=10, verify=False) as client:
        yield client


@pytest.fixture
def stats_when(http: httpx.AsyncClient) -> StatsWhen:
    async def poll(check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while True:
            stats: dict[str, Any] = (await http.get("/emulator/stats")).json()
            if check(stats) or loop.time() > deadline:
                return stats
            await asyncio.sleep(0.005)

    return poll
