"""``count_tokens`` through the official SDK and ``/api/v1/tokens/count`` against the running
mesh: the count covers the system prompt and the tool definitions, not just the messages. A
Claude model's count is its Anthropic target's own (the emulator's, here); another model's
is the processor's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest

from llmesh.services.processor.tool_tokens import TOKENS_PER_TOOL, TOOLS_FRAMING
from tests.support.mesh import Mesh

HELLO: list[Any] = [{"role": "user", "content": "hello there"}]
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "The current weather in a given city, in degrees Celsius.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city name."}},
        "required": ["city"],
    },
}


@pytest.fixture
async def client(mesh: Mesh) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=mesh.gateway_url, api_key="unused", max_retries=0, timeout=20
    ) as c:
        yield c


async def test_count_tokens_includes_tools_and_system(client: anthropic.AsyncAnthropic) -> None:
    model = "openai/gpt-4o-mini"  # the processor's count (a Claude model's is its own, below)
    bare = await client.messages.count_tokens(model=model, messages=HELLO)
    tools = await client.messages.count_tokens(model=model, messages=HELLO, tools=[WEATHER])
    both = await client.messages.count_tokens(
        model=model, messages=HELLO, tools=[WEATHER], system="Answer in one short sentence."
    )
    # the schema alone is well over 20 tokens, on top of the framing
    assert tools.input_tokens > bare.input_tokens + TOOLS_FRAMING + TOKENS_PER_TOOL + 20
    assert both.input_tokens > tools.input_tokens
    two = await client.messages.count_tokens(
        model=model, messages=HELLO, tools=[WEATHER, {**WEATHER, "name": "get_forecast"}]
    )
    assert two.input_tokens - tools.input_tokens > TOKENS_PER_TOOL


async def test_native_count_takes_tools(mesh: Mesh) -> None:
    messages = [{"role": "ROLE_USER", "content": "hello there"}]
    tool = {
        "name": "get_weather",
        "description": WEATHER["description"],
        "parameters": WEATHER["input_schema"],
    }
    async with httpx.AsyncClient(base_url=mesh.gateway_url) as http:
        bare = await http.post(
            "/api/v1/tokens/count", json={"model": "openai/gpt-4o", "messages": messages}
        )
        with_tool = await http.post(
            "/api/v1/tokens/count",
            json={"model": "openai/gpt-4o", "messages": messages, "tools": [tool]},
        )
        nameless = await http.post(
            "/api/v1/tokens/count",
            json={"model": "openai/gpt-4o", "text": "hi", "tools": [{"description": "x"}]},
        )
    assert bare.status_code == with_tool.status_code == 200, with_tool.text
    extra = int(with_tool.json()["tokens"]) - int(bare.json()["tokens"])
    assert extra > TOOLS_FRAMING + TOKENS_PER_TOOL + 20
    assert nameless.status_code == 400 and "tools[0].name" in nameless.text


async def _emulator_count(mesh: Mesh, body: dict[str, Any]) -> int:
    """What Anthropic (the emulator standing in for it) counts for `body`."""
    async with httpx.AsyncClient(base_url=mesh.emulator_url) as http:
        r = await http.post("/v1/messages/count_tokens", json=body)
    assert r.status_code == 200, r.text
    return int(r.json()["input_tokens"])


async def test_a_claude_count_is_the_targets_own(
    client: anthropic.AsyncAnthropic, mesh: Mesh
) -> None:
    system = "Answer in one short sentence."
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    counts = []
    for extra in ({}, {"tools": [WEATHER]}, {"tools": [WEATHER], "system": system}):
        counted = await client.messages.count_tokens(
            model="anthropic/claude-sonnet-4-6", messages=HELLO, thinking=thinking, **extra
        )
        sent = {"model": "claude-sonnet-4-6", "messages": HELLO, "thinking": thinking, **extra}
        if "system" in extra:
            sent["system"] = [{"type": "text", "text": system}]
        assert counted.input_tokens == await _emulator_count(mesh, sent)
        counts.append(counted.input_tokens)
    assert counts == sorted(set(counts))  # the tools and the system prompt count


async def test_an_openai_count_is_the_processors(
    client: anthropic.AsyncAnthropic, mesh: Mesh
) -> None:
    counted = await client.messages.count_tokens(
        model="openai/gpt-4o-mini", messages=HELLO, tools=[WEATHER]
    )
    tool = {
        "name": WEATHER["name"],
        "description": WEATHER["description"],
        "parameters": WEATHER["input_schema"],
    }
    async with httpx.AsyncClient(base_url=mesh.gateway_url) as http:
        r = await http.post(
            "/api/v1/tokens/count",
            json={
                "model": "openai/gpt-4o-mini",
                "messages": [{"role": "ROLE_USER", "content": "hello there"}],
                "tools": [tool],
            },
        )
    assert counted.input_tokens == int(r.json()["tokens"])


async def test_counting_an_unknown_model_is_a_404(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.count_tokens(model="nobody/nothing", messages=HELLO)
