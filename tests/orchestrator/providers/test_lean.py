"""The lean transport (own HTTP/1.1 client, orjson) against the built-in emulator, both APIs.

The same adapters on recorded exchanges, without a server, are in `test_lean_mock.py`; how
the registry and the configuration pick the transport, in `test_transport_choice.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from llmesh.services.common.config import ConfigError, ProviderConfig, ResolvedProvider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role, Tool, ToolCall
from llmesh.services.core.events import Finish, ProviderEvent, TextDelta, ToolCallDelta, UsageUpdate
from llmesh.services.emulator.app import start
from llmesh.services.emulator.settings import EmulatorSettings
from llmesh.services.orchestrator.providers import lean
from llmesh.services.orchestrator.providers.lean import LeanProvider
from llmesh.services.transport import ConnectionPool
from tests.support.proxy import CountingProxy

MODEL = "claude-test"
TEXT = "The quick brown fox jumps over the lazy dog"
KEY = "sk-test-secret-key-123"
APIS = ("openai", "anthropic")


@pytest.fixture
async def emulator() -> AsyncIterator[str]:
    runner, port = await start(EmulatorSettings(host="127.0.0.1", port=0, cache_min_tokens=8))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _provider(
    api: str, url: str, headers: Mapping[str, str] | None = None, **config: Any
) -> LeanProvider:
    """A lean provider for `api` at the emulator (or any server) at `url`."""
    kind = "anthropic" if api == "anthropic" else "emulator"
    cfg = ProviderConfig(api, kind, headers=dict(headers or {}), timeout=10.0, **config)
    if api == "anthropic":
        return lean.anthropic_factory(ResolvedProvider(cfg, url, KEY, True))
    return lean.compatible_factory(ResolvedProvider(cfg, url + "/v1", KEY, True))


def _request(text: str = TEXT, **kwargs: Any) -> ChatRequest:
    return ChatRequest((Message(Role.USER, text),), **kwargs)


async def _collect(
    provider: LeanProvider, request: ChatRequest, *, timeout: float | None = None
) -> list[ProviderEvent]:
    try:
        return [event async for event in provider.stream(MODEL, request, timeout=timeout)]
    finally:
        await provider.aclose()


async def _fails(
    api: str, url: str, headers: Mapping[str, str], *, timeout: float | None = None
) -> tuple[LlmeshError, list[ProviderEvent]]:
    """The error a faulty call raises, and the events delivered before it."""
    events: list[ProviderEvent] = []
    provider = _provider(api, url, headers)
    with pytest.raises(LlmeshError) as info:
        async with contextlib.aclosing(
            provider.stream(MODEL, _request(), timeout=timeout)
        ) as stream:
            async for event in stream:
                events.append(event)
    await provider.aclose()
    assert not any(isinstance(e, Finish) for e in events)
    assert KEY not in str(info.value)
    return info.value, events


def _texts(events: list[ProviderEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


async def _stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{url}/emulator/stats")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data


async def _disconnects_become(url: str, expected: int) -> int:
    for _ in range(40):
        seen = int((await _stats(url))["disconnects"])
        if seen >= expected:
            return seen
        await asyncio.sleep(0.025)
    return int((await _stats(url))["disconnects"])


# ---------------------------------------------------------------------------------------
# Replies


@pytest.mark.parametrize("api", APIS)
async def test_deltas_that_arrive_together_are_coalesced_and_paced_ones_are_not(
    emulator: str, api: str
) -> None:
    burst = await _collect(_provider(api, emulator), _request())
    assert len(_texts(burst)) < len(re.findall(r"\s*\S+", TEXT)), "one read, fewer deltas"
    # 40 ms apart: a loaded machine can delay a read by 5 ms, and what arrives together is
    # rightly one delta
    paced = await _collect(_provider(api, emulator, {"x-emulator-itl-ms": "40"}), _request())
    assert _texts(paced) == re.findall(r"\s*\S+", TEXT), "paced tokens are never held back"


@pytest.mark.parametrize("api", APIS)
async def test_text_streams_then_finishes_with_usage(emulator: str, api: str) -> None:
    events = await _collect(_provider(api, emulator), _request())
    assert "".join(_texts(events)) == TEXT
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert finish.reason is FinishReason.STOP
    assert finish.provider_reason == ("end_turn" if api == "anthropic" else "stop")
    assert finish.usage is not None
    assert finish.usage.output_tokens == len(re.findall(r"\s*\S+", TEXT))
    assert finish.usage.input_tokens > 0
    assert any(isinstance(e, UsageUpdate) for e in events)
    assert sum(isinstance(e, Finish) for e in events) == 1


@pytest.mark.parametrize("api", APIS)
async def test_max_tokens_and_stop(emulator: str, api: str) -> None:
    events = await _collect(_provider(api, emulator), _request(max_tokens=3, temperature=0.0))
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason is FinishReason.LENGTH
    assert "".join(_texts(events)) == "The quick brown"
    events = await _collect(_provider(api, emulator), _request(stop=(" jumps",)))
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason is FinishReason.STOP
    assert "".join(_texts(events)) == "The quick brown fox"


@pytest.mark.parametrize("api", APIS)
async def test_tool_calls_stream_as_deltas_with_arguments(emulator: str, api: str) -> None:
    text = "please call get_weather and get_time for Oslo"
    tools = (
        Tool(
            "get_weather",
            "Weather by city",
            {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        ),
        Tool("get_time"),
    )
    events = await _collect(_provider(api, emulator), _request(text, tools=tools))
    assert not _texts(events)
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    firsts = [c for c in calls if c.name]
    assert [(c.index, c.name) for c in firsts] == [(0, "get_weather"), (1, "get_time")]
    assert all(c.id for c in firsts)
    arguments = ["".join(c.arguments_delta for c in calls if c.index == i) for i in (0, 1)]
    assert json.loads(arguments[0]) == {"text": text}  # valid against its parameters
    assert json.loads(arguments[1]) == {}  # a tool without parameters
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason is FinishReason.TOOL_CALLS


@pytest.mark.parametrize("api", APIS)
async def test_tool_results_in_history(emulator: str, api: str) -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Oslo"}')
    messages = (
        Message(Role.SYSTEM, "Be brief."),
        Message(Role.USER, "weather in Oslo?"),
        Message(Role.ASSISTANT, "", tool_calls=(call,)),
        Message(Role.TOOL, "sunny", tool_call_id="call_1"),
    )
    request = ChatRequest(messages, tools=(Tool("get_weather"),))
    events = await _collect(_provider(api, emulator), request)
    assert "".join(_texts(events)) == "Tool result: sunny"


@pytest.mark.parametrize("api", APIS)
async def test_cached_tokens_reach_usage(emulator: str, api: str) -> None:
    provider = _provider(api, emulator, {"x-emulator-cached-tokens": "4"})
    finish = (await _collect(provider, _request()))[-1]
    assert isinstance(finish, Finish) and finish.usage is not None
    assert finish.usage.cache_read_tokens == 4
    plain = (await _collect(_provider(api, emulator), _request()))[-1]
    assert isinstance(plain, Finish) and plain.usage is not None
    total = finish.usage.input_tokens + finish.usage.cache_read_tokens
    assert total == plain.usage.input_tokens  # input excludes the cached part


async def test_anthropic_cache_writes_then_reads(emulator: str) -> None:
    """Automatic breakpoints on a long system prompt: written once, then read."""
    system = Message(Role.SYSTEM, " ".join(f"rule{i}" for i in range(1200)))
    request = ChatRequest((system, Message(Role.USER, "hi")))
    first = (await _collect(_provider("anthropic", emulator), request))[-1]
    second = (await _collect(_provider("anthropic", emulator), request))[-1]
    assert isinstance(first, Finish) and first.usage is not None
    assert isinstance(second, Finish) and second.usage is not None
    assert first.usage.cache_write_tokens > 0 and first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens


@pytest.mark.parametrize("api", APIS)
async def test_configured_headers_reach_the_upstream(emulator: str, api: str) -> None:
    """Extra headers are sent (here: latency controls the emulator obeys)."""
    provider = _provider(api, emulator, {"X-Emulator-TTFT-Ms": "150"})
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    events = await _collect(provider, _request("hi"))
    assert loop.time() - t0 >= 0.14
    assert isinstance(events[-1], Finish)


# ---------------------------------------------------------------------------------------
# Faults


@pytest.mark.parametrize("api", APIS)
async def test_429_is_rate_limited_with_retry_after(emulator: str, api: str) -> None:
    err, events = await _fails(
        api, emulator, {"x-emulator-fault": "rate_limit", "x-emulator-retry-after": "7"}
    )
    assert err.reason is Reason.RATE_LIMITED
    assert err.retry_after == 7.0
    assert events == []


@pytest.mark.parametrize(
    ("fault", "openai_reason", "anthropic_reason"),
    [
        ("quota", Reason.QUOTA_EXHAUSTED, Reason.QUOTA_EXHAUSTED),
        ("server_error", Reason.UPSTREAM_UNAVAILABLE, Reason.UPSTREAM_UNAVAILABLE),
        # OpenAI's 503 says "overloaded or not ready yet", which the wire module reads as such
        ("unavailable", Reason.OVERLOADED, Reason.UPSTREAM_UNAVAILABLE),
        ("overloaded", Reason.OVERLOADED, Reason.OVERLOADED),  # OpenAI 503, Anthropic 529
        ("auth", Reason.UPSTREAM_AUTH_FAILED, Reason.UPSTREAM_AUTH_FAILED),
        ("not_found", Reason.MODEL_NOT_FOUND, Reason.MODEL_NOT_FOUND),
        ("bad_request", Reason.UPSTREAM_INVALID_REQUEST, Reason.UPSTREAM_INVALID_REQUEST),
        ("context_length", Reason.CONTEXT_TOO_LONG, Reason.CONTEXT_TOO_LONG),
    ],
)
@pytest.mark.parametrize("api", APIS)
async def test_status_faults_are_classified_by_error_body(
    emulator: str, api: str, fault: str, openai_reason: Reason, anthropic_reason: Reason
) -> None:
    err, events = await _fails(api, emulator, {"x-emulator-fault": fault})
    assert err.reason is (anthropic_reason if api == "anthropic" else openai_reason)
    assert events == []


@pytest.mark.parametrize(
    ("api", "reason"),
    [("openai", Reason.UPSTREAM_UNAVAILABLE), ("anthropic", Reason.OVERLOADED)],
)
async def test_error_inside_a_200_stream(emulator: str, api: str, reason: Reason) -> None:
    err, events = await _fails(
        api, emulator, {"x-emulator-fault": "stream_error", "x-emulator-fault-after": "3"}
    )
    assert err.reason is reason
    assert "".join(_texts(events)) == "".join(re.findall(r"\s*\S+", TEXT)[:3])  # it did start


@pytest.mark.parametrize("api", APIS)
async def test_cut_stream_is_interrupted_not_finished(emulator: str, api: str) -> None:
    err, events = await _fails(
        api, emulator, {"x-emulator-fault": "cut", "x-emulator-fault-after": "2"}
    )
    assert err.reason is Reason.STREAM_INTERRUPTED
    assert "".join(_texts(events)) == "".join(re.findall(r"\s*\S+", TEXT)[:2])


@pytest.mark.parametrize("api", APIS)
async def test_malformed_chunk(emulator: str, api: str) -> None:
    err, events = await _fails(api, emulator, {"x-emulator-fault": "malformed"})
    assert err.reason is Reason.MALFORMED_RESPONSE
    assert "".join(_texts(events)) == "".join(re.findall(r"\s*\S+", TEXT)[:2])


@pytest.mark.parametrize("api", APIS)
async def test_no_answer_times_out_at_the_deadline(emulator: str, api: str) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    err, _ = await _fails(api, emulator, {"x-emulator-fault": "timeout"}, timeout=0.3)
    assert err.reason is Reason.UPSTREAM_TIMEOUT
    assert 0.3 <= loop.time() - t0 < 1.5


@pytest.mark.parametrize("api", APIS)
async def test_the_deadline_bounds_the_whole_stream(emulator: str, api: str) -> None:
    """Not only the wait for headers or for one chunk: a slow, steady stream too."""
    err, events = await _fails(api, emulator, {"x-emulator-itl-ms": "100"}, timeout=0.35)
    assert err.reason is Reason.UPSTREAM_TIMEOUT
    assert 2 <= len(_texts(events)) < len(re.findall(r"\s*\S+", TEXT))


@pytest.mark.parametrize("api", APIS)
async def test_a_passed_deadline_fails_at_once(emulator: str, api: str) -> None:
    before = (await _stats(emulator))["requests"]
    for timeout in (0.0, -1.0):
        err, _ = await _fails(api, emulator, {}, timeout=timeout)
        assert err.reason is Reason.UPSTREAM_TIMEOUT
    assert (await _stats(emulator))["requests"] == before  # nothing was sent


@pytest.mark.parametrize("api", APIS)
async def test_stall_mid_stream_times_out(emulator: str, api: str) -> None:
    err, events = await _fails(
        api, emulator, {"x-emulator-fault": "stall", "x-emulator-fault-after": "1"}, timeout=0.3
    )
    assert err.reason is Reason.UPSTREAM_TIMEOUT
    assert "".join(_texts(events)) == "".join(re.findall(r"\s*\S+", TEXT)[:1])


@pytest.mark.parametrize("api", APIS)
async def test_short_stall_within_the_deadline_completes(emulator: str, api: str) -> None:
    headers = {"x-emulator-fault": "stall", "x-emulator-stall-ms": "100"}
    events = await _collect(_provider(api, emulator, headers), _request(), timeout=5)
    assert "".join(_texts(events)) == TEXT
    assert isinstance(events[-1], Finish)


@pytest.mark.parametrize("api", APIS)
async def test_unreachable_upstream(api: str) -> None:
    err, _ = await _fails(api, "http://127.0.0.1:9", {})
    assert err.reason is Reason.UPSTREAM_UNAVAILABLE


async def test_invalid_request_fails_before_any_io() -> None:
    """An Anthropic body that cannot be built is the caller's error, not the upstream's."""
    call = ToolCall("call_1", "f", "not json")
    request = ChatRequest((Message(Role.ASSISTANT, "", tool_calls=(call,)),))
    provider = _provider("anthropic", "http://127.0.0.1:9")
    with pytest.raises(LlmeshError) as info:
        await _collect(provider, request)
    assert info.value.reason is Reason.INVALID_REQUEST


# ---------------------------------------------------------------------------------------
# Connections


@pytest.mark.parametrize("api", APIS)
async def test_cancelling_the_consumer_closes_the_upstream_connection(
    emulator: str, api: str
) -> None:
    provider = _provider(api, emulator, {"x-emulator-itl-ms": "50"})
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
    assert await _disconnects_become(emulator, before + 1) == before + 1  # within 1 s
    await provider.aclose()


@pytest.mark.parametrize("api", APIS)
async def test_closing_the_iterator_early_closes_the_upstream_connection(
    emulator: str, api: str
) -> None:
    provider = _provider(api, emulator, {"x-emulator-itl-ms": "50"})
    before = (await _stats(emulator))["disconnects"]
    async with contextlib.aclosing(provider.stream(MODEL, _request(), timeout=None)) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                break
    assert await _disconnects_become(emulator, before + 1) == before + 1
    await provider.aclose()


@pytest.mark.parametrize("api", APIS)
async def test_cancelling_during_the_wait_for_headers_closes_the_connection(
    emulator: str, api: str
) -> None:
    provider = _provider(api, emulator, {"x-emulator-ttft-ms": "5000"})
    before = (await _stats(emulator))["disconnects"]
    stream = provider.stream(MODEL, _request(), timeout=None)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(stream), 0.2)
    await stream.aclose()
    assert await _disconnects_become(emulator, before + 1) == before + 1
    await provider.aclose()


async def _fault_next(url: str, fault: str, times: int) -> None:
    """Make the next `times` calls to `MODEL` fail with `fault` (an emulator run-time rule)."""
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{url}/emulator/faults", json={"model": MODEL, "fault": fault, "times": times}
        )
        r.raise_for_status()


async def _outcome(provider: LeanProvider, *, stop_at_finish: bool = False) -> str:
    try:
        async with contextlib.aclosing(provider.stream(MODEL, _request(), timeout=5)) as stream:
            async for event in stream:
                if isinstance(event, Finish) and stop_at_finish:
                    break
    except LlmeshError as err:
        return err.reason.name
    return "ok"


@pytest.mark.parametrize("api", APIS)
async def test_sequential_calls_share_one_connection(emulator: str, api: str) -> None:
    """Complete streams, a consumer that stops at Finish, and error answers all give the
    connection back to the pool."""
    proxy = CountingProxy(int(emulator.rsplit(":", 1)[1]))
    async with proxy as url:
        provider = _provider(api, url)
        outcomes = [await _outcome(provider) for _ in range(3)]
        outcomes += [await _outcome(provider, stop_at_finish=True) for _ in range(3)]
        await _fault_next(emulator, "rate_limit", 2)
        outcomes += [await _outcome(provider) for _ in range(3)]
        await provider.aclose()
    assert outcomes == ["ok"] * 6 + ["RATE_LIMITED"] * 2 + ["ok"]
    assert proxy.accepted == 1


@pytest.mark.parametrize("api", APIS)
async def test_a_cut_connection_is_replaced(emulator: str, api: str) -> None:
    proxy = CountingProxy(int(emulator.rsplit(":", 1)[1]))
    async with proxy as url:
        provider = _provider(api, url)
        await _fault_next(emulator, "cut", 1)
        outcomes = [await _outcome(provider) for _ in range(3)]
        await provider.aclose()
    assert outcomes == ["STREAM_INTERRUPTED", "ok", "ok"]
    assert proxy.accepted == 2


@pytest.mark.parametrize("api", APIS)
async def test_concurrent_streams_share_the_pool(emulator: str, api: str) -> None:
    provider = _provider(api, emulator, {"x-emulator-itl-ms": "5"})
    results = await asyncio.gather(
        *(_collect_open(provider, _request(f"call number {i}")) for i in range(20))
    )
    for i, events in enumerate(results):
        assert "".join(_texts(events)) == f"call number {i}"
        assert isinstance(events[-1], Finish)
    await provider.aclose()


async def _collect_open(provider: LeanProvider, request: ChatRequest) -> list[ProviderEvent]:
    return [event async for event in provider.stream(MODEL, request, timeout=5)]


def test_building_a_provider_needs_no_event_loop() -> None:
    """The pool binds to the event loop on first use, and opens nothing before."""
    provider = _provider("openai", "http://127.0.0.1:9")
    transport = provider._transport
    assert isinstance(transport, ConnectionPool), "a pool of its own unless given a transport"
    assert transport.connections == 0


@pytest.mark.parametrize(
    ("url", "headers", "expected"),
    [
        ("http://127.0.0.1:9", {"X-Bad": "one\r\nX-Injected: two"}, "x-bad"),
        ("http://127.0.0.1:9", {"Bad Name:": "v"}, "bad name:"),
        ("ftp://127.0.0.1:9", {}, "not an http"),
    ],
)
def test_a_header_or_base_url_http_cannot_carry_is_a_config_error(
    url: str, headers: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        _provider("openai", url, headers)


async def test_aclose_is_idempotent_and_the_provider_reopens(emulator: str) -> None:
    provider = _provider("openai", emulator)
    await provider.aclose()  # never opened
    assert isinstance((await _collect(provider, _request("one")))[-1], Finish)
    await provider.aclose()
    assert isinstance((await _collect(provider, _request("two")))[-1], Finish)
