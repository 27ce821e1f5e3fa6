"""The Anthropic adapter with the real SDK against the built-in emulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from llmesh.services.common.config import ProviderConfig, ResolvedProvider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role, Tool
from llmesh.services.core.events import Finish, ProviderEvent, TextDelta, ToolCallDelta, UsageUpdate
from llmesh.services.emulator.app import start
from llmesh.services.emulator.settings import EmulatorSettings
from llmesh.services.orchestrator.providers import anthropic_sdk
from llmesh.services.orchestrator.providers.anthropic_sdk import AnthropicProvider, factory
from tests.support.proxy import CountingProxy

MODEL = "claude-test"  # any name not in the SDK's deprecation list
TEXT = "The quick brown fox jumps over the lazy dog"


@pytest.fixture
async def emulator() -> AsyncIterator[str]:
    runner, port = await start(EmulatorSettings(host="127.0.0.1", port=0, cache_min_tokens=8))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _provider(url: str, headers: Mapping[str, str] | None = None) -> AnthropicProvider:
    config = ProviderConfig("anthropic", "anthropic", headers=dict(headers or {}), timeout=10.0)
    return factory(ResolvedProvider(config, url, "sk-ant-test-secret-key", True))


def _request(text: str = TEXT, **kwargs: Any) -> ChatRequest:
    return ChatRequest((Message(Role.USER, text),), **kwargs)


async def _collect(
    provider: AnthropicProvider, request: ChatRequest, *, timeout: float | None = None
) -> list[ProviderEvent]:
    events: list[ProviderEvent] = []
    try:
        async for event in provider.stream(MODEL, request, timeout=timeout):
            events.append(event)
    finally:
        await provider.aclose()
    return events


async def _fails(
    url: str, headers: Mapping[str, str], *, timeout: float | None = None
) -> tuple[LlmeshError, list[ProviderEvent]]:
    """The error a faulty call raises, and the events delivered before it."""
    events: list[ProviderEvent] = []
    provider = _provider(url, headers)
    with pytest.raises(LlmeshError) as info:
        async with contextlib.aclosing(
            provider.stream(MODEL, _request(), timeout=timeout)
        ) as stream:
            async for event in stream:
                events.append(event)
    await provider.aclose()
    assert not any(isinstance(e, Finish) for e in events)
    assert "sk-ant-test-secret-key" not in str(info.value)
    return info.value, events


async def _stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{url}/emulator/stats")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data


async def test_text_stream_then_finish_with_usage(emulator: str) -> None:
    events = await _collect(_provider(emulator), _request())
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert texts == re.findall(r"\s*\S+", TEXT)  # one delta per piece, in order
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.reason, finish.provider_reason) == (FinishReason.STOP, "end_turn")
    assert finish.usage is not None
    assert finish.usage.output_tokens == len(texts)
    assert finish.usage.input_tokens > 0
    assert isinstance(events[0], UsageUpdate)  # from message_start
    assert not any(isinstance(e, ToolCallDelta) for e in events)


async def test_max_tokens_and_stop_sequences(emulator: str) -> None:
    events = await _collect(_provider(emulator), _request(max_tokens=3, temperature=0.0))
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.reason, finish.provider_reason) == (FinishReason.LENGTH, "max_tokens")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "The quick brown"
    events = await _collect(_provider(emulator), _request(stop=(" lazy", " jumps")))
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.reason, finish.provider_reason) == (FinishReason.STOP, "stop_sequence")
    assert finish.stop_sequence == " jumps"  # the one Anthropic says matched
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "The quick brown fox"


async def test_tool_use_streams_as_tool_call_deltas_never_text(emulator: str) -> None:
    text = "please call get_weather for Oslo"
    tools = (
        Tool(
            "get_weather",
            "Weather by city",
            {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        ),
        Tool("get_time"),
    )
    events = await _collect(_provider(emulator), _request(text, tools=tools))
    assert not any(isinstance(e, TextDelta) for e in events)
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert calls[0].index == 0 and calls[0].name == "get_weather" and calls[0].id
    assert all(c.index == 0 for c in calls)
    arguments = "".join(c.arguments_delta for c in calls)
    assert json.loads(arguments) == {"text": text}
    assert len(calls) > 2  # the arguments arrived in fragments
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.reason, finish.provider_reason) == (FinishReason.TOOL_CALLS, "tool_use")


async def test_overloaded_error_event_after_http_200(emulator: str) -> None:
    err, events = await _fails(
        emulator, {"x-emulator-fault": "stream_error", "x-emulator-fault-after": "3"}
    )
    assert err.reason is Reason.OVERLOADED
    assert len([e for e in events if isinstance(e, TextDelta)]) == 3  # it did start


async def test_529_is_overloaded(emulator: str) -> None:
    err, events = await _fails(emulator, {"x-emulator-fault": "overloaded"})
    assert err.reason is Reason.OVERLOADED
    assert events == []


async def test_429_is_rate_limited_with_retry_after(emulator: str) -> None:
    err, _ = await _fails(
        emulator, {"x-emulator-fault": "rate_limit", "x-emulator-retry-after": "7"}
    )
    assert err.reason is Reason.RATE_LIMITED
    assert err.retry_after == 7.0


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("auth", Reason.UPSTREAM_AUTH_FAILED),
        ("not_found", Reason.MODEL_NOT_FOUND),
        ("bad_request", Reason.UPSTREAM_INVALID_REQUEST),
        ("context_length", Reason.CONTEXT_TOO_LONG),
        ("quota", Reason.QUOTA_EXHAUSTED),
        ("server_error", Reason.UPSTREAM_UNAVAILABLE),
        ("unavailable", Reason.UPSTREAM_UNAVAILABLE),
    ],
)
async def test_status_faults_classified_by_error_type(
    emulator: str, fault: str, reason: Reason
) -> None:
    err, _ = await _fails(emulator, {"x-emulator-fault": fault})
    assert err.reason is reason


async def test_cut_stream_is_interrupted_not_finished(emulator: str) -> None:
    err, events = await _fails(emulator, {"x-emulator-fault": "cut", "x-emulator-fault-after": "2"})
    assert err.reason is Reason.STREAM_INTERRUPTED
    assert len([e for e in events if isinstance(e, TextDelta)]) == 2


async def test_malformed_chunk(emulator: str) -> None:
    err, _ = await _fails(emulator, {"x-emulator-fault": "malformed"})
    assert err.reason is Reason.MALFORMED_RESPONSE


async def test_timeout(emulator: str) -> None:
    err, _ = await _fails(emulator, {"x-emulator-fault": "timeout"}, timeout=0.3)
    assert err.reason is Reason.UPSTREAM_TIMEOUT


async def test_stall_mid_stream_times_out(emulator: str) -> None:
    err, events = await _fails(
        emulator, {"x-emulator-fault": "stall", "x-emulator-fault-after": "1"}, timeout=0.3
    )
    assert err.reason is Reason.UPSTREAM_TIMEOUT
    assert len([e for e in events if isinstance(e, TextDelta)]) == 1


async def test_unreachable_upstream() -> None:
    err, _ = await _fails("http://127.0.0.1:9", {})
    assert err.reason is Reason.UPSTREAM_UNAVAILABLE


async def test_cancelling_the_consumer_closes_the_upstream_connection(emulator: str) -> None:
    provider = _provider(emulator, {"x-emulator-itl-ms": "50"})
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream(MODEL, _request(), timeout=None):
            first.set()

    before = (await _stats(emulator))["disconnects"]
    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(20):
        if (await _stats(emulator))["disconnects"] > before:
            break
        await asyncio.sleep(0.05)
    assert (await _stats(emulator))["disconnects"] == before + 1  # within 1 s
    await provider.aclose()


async def test_closing_the_iterator_early_closes_the_upstream_connection(emulator: str) -> None:
    provider = _provider(emulator, {"x-emulator-itl-ms": "50"})
    before = (await _stats(emulator))["disconnects"]
    async with contextlib.aclosing(provider.stream(MODEL, _request(), timeout=None)) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                break
    for _ in range(20):
        if (await _stats(emulator))["disconnects"] > before:
            break
        await asyncio.sleep(0.05)
    assert (await _stats(emulator))["disconnects"] == before + 1
    await provider.aclose()


async def test_forced_cache_reads_reach_usage(emulator: str) -> None:
    provider = _provider(emulator, {"x-emulator-cached-tokens": "4"})
    finish = (await _collect(provider, _request()))[-1]
    assert isinstance(finish, Finish) and finish.usage is not None
    assert finish.usage.cache_read_tokens == 4


async def test_cache_writes_then_reads_reach_usage(
    emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The domain has no cache markers yet: mark the system prompt on the way out."""
    build = anthropic_sdk.to_provider_request

    def with_cache_marker(model: str, req: ChatRequest, **kwargs: Any) -> dict[str, Any]:
        body = build(model, req, **kwargs)
        body["system"][-1]["cache_control"] = {"type": "ephemeral"}
        return body

    monkeypatch.setattr(anthropic_sdk, "to_provider_request", with_cache_marker)
    system = Message(Role.SYSTEM, "You are a careful assistant who answers in one short line.")
    req = ChatRequest((system, Message(Role.USER, "hello there")))
    first = (await _collect(_provider(emulator), req))[-1]
    second = (await _collect(_provider(emulator), req))[-1]
    assert isinstance(first, Finish) and first.usage is not None
    assert isinstance(second, Finish) and second.usage is not None
    assert first.usage.cache_write_tokens > 0 and first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
    assert second.usage.cache_write_tokens == 0
    total = first.usage.input_tokens + first.usage.cache_write_tokens
    assert second.usage.input_tokens + second.usage.cache_read_tokens == total


async def test_connection_is_reused_when_the_consumer_stops_at_finish(emulator: str) -> None:
    """The adapter reads the end of the body before yielding Finish, so the engine closing
    the stream right after Finish does not cost a new connection per call."""
    proxy = CountingProxy(int(emulator.rsplit(":", 1)[1]))
    async with proxy as url:
        provider = _provider(url)
        for _ in range(5):
            async with contextlib.aclosing(provider.stream(MODEL, _request(), timeout=5)) as stream:
                async for event in stream:
                    if isinstance(event, Finish):
                        break
        await provider.aclose()
    assert proxy.accepted == 1
