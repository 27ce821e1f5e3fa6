"""``count_tokens`` through the official SDK and ``/api/v1/tokens/count`` against the running
mesh: the count covers the system prompt and the tool definitions, not just the messages."""

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


@pytest.mark.parametrize("model", ["anthropic/claude-sonnet-4-6", "openai/gpt-4o-mini"])
async def test_count_tokens_includes_tools_and_system(
    client: anthropic.AsyncAnthropic, model: str
) -> None:
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
