"""Counting input tokens through an Anthropic adapter (lean and SDK): the request goes to
``/v1/messages/count_tokens`` as the reply's would go to ``/v1/messages``, and the count is
the API's own; an OpenAI-API adapter has no such count."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from llmesh.services.common.config import ProviderConfig, ResolvedProvider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ChatRequest, Message, Role, ThinkingBlock, Tool
from llmesh.services.emulator import EmulatorSettings, start
from llmesh.services.orchestrator.providers import anthropic_sdk, lean, openai_sdk
from llmesh.services.orchestrator.providers.anthropic_wire import count_request
from llmesh.services.orchestrator.providers.base import Provider, TokenCounting

WEATHER = Tool("get_weather", "The weather.", {"type": "object", "properties": {}})
REQUEST = ChatRequest(
    (Message(Role.SYSTEM, "be brief"), Message(Role.USER, "hello there")),
    tools=(WEATHER,),
    max_tokens=64,
    temperature=0.5,
    stop=("END",),
)


@pytest.fixture
async def emulator() -> AsyncIterator[str]:
    runner, port = await start(EmulatorSettings(host="127.0.0.1", port=0))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _provider(kind: str, transport: str, url: str) -> Provider:
    config = ProviderConfig("p", kind, timeout=10.0)
    if kind == "anthropic":
        factory = lean.anthropic_factory if transport == "lean" else anthropic_sdk.factory
        return factory(ResolvedProvider(config, url, "sk-test", True))
    factory = lean.openai_factory if transport == "lean" else openai_sdk.openai_factory
    return factory(ResolvedProvider(config, url + "/v1", "sk-test", True))


def test_the_count_body_keeps_only_what_counts() -> None:
    body = count_request("claude-test", REQUEST)
    assert set(body) == {"model", "messages", "system", "tools"}


@pytest.mark.parametrize("transport", ["lean", "sdk"])
async def test_anthropic_counts_as_the_api_does(emulator: str, transport: str) -> None:
    provider = _provider("anthropic", transport, emulator)
    assert isinstance(provider, TokenCounting)
    try:
        counted = await provider.count_tokens("claude-test", REQUEST, timeout=5.0)
        async with httpx.AsyncClient(base_url=emulator) as http:
            r = await http.post(
                "/v1/messages/count_tokens", json=count_request("claude-test", REQUEST)
            )
        assert counted == r.json()["input_tokens"] > 0
        forged = ThinkingBlock("hm", "forged")
        bad = ChatRequest(
            (
                Message(Role.USER, "hi"),
                Message(Role.ASSISTANT, "ok", thinking=(forged,)),
                Message(Role.USER, "again"),
            )
        )
        with pytest.raises(LlmeshError) as info:
            await provider.count_tokens("claude-test", bad, timeout=5.0)
        assert info.value.reason is Reason.UPSTREAM_INVALID_REQUEST
    finally:
        await provider.aclose()


@pytest.mark.parametrize("transport", ["lean", "sdk"])
async def test_an_openai_api_has_no_count(emulator: str, transport: str) -> None:
    provider = _provider("openai", transport, emulator)
    try:
        if isinstance(provider, TokenCounting):
            assert await provider.count_tokens("gpt-4o-mini", REQUEST, timeout=5.0) is None
    finally:
        await provider.aclose()
