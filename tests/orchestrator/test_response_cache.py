"""The exact-match response cache: LRU and TTL, record and replay, and Redis (its keys and
what is cacheable: `test_response_cache_keys.py`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis

from llmesh.services.common.errors import Reason
from llmesh.services.core.chat import (
    ChatRequest,
    FinishReason,
    Message,
    Role,
    ThinkingBlock,
)
from llmesh.services.core.embeddings import (
    Embeddings,
    pack_floats,
)
from llmesh.services.core.events import (
    CallEvent,
    Completed,
    ReasoningDelta,
    Started,
    Switched,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from llmesh.services.core.policy import MidStreamPolicy
from llmesh.services.core.target import Target
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.response_cache import (
    CachedReply,
    CachedToolCall,
    ResponseCache,
    cache_key,
    record_reply,
    replay,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reply(text: str = "hi there", **kwargs: Any) -> CachedReply:
    return CachedReply("openai", "gpt-4o-mini", text, **kwargs)


# -- in memory -----------------------------------------------------------------------------


async def test_miss_then_hit() -> None:
    cache = ResponseCache()
    assert await cache.get("k") is None
    await cache.put("k", _reply())
    assert await cache.get("k") == _reply()
    await cache.aclose()


async def test_lru_evicts_the_least_recently_used() -> None:
    cache = ResponseCache(max_entries=2)
    await cache.put("a", _reply("a"))
    await cache.put("b", _reply("b"))
    assert await cache.get("a") is not None  # a is now the most recent
    await cache.put("c", _reply("c"))
    assert await cache.get("b") is None
    assert [r.text for r in [await cache.get("a"), await cache.get("c")] if r] == ["a", "c"]
    for i in range(100):
        await cache.put(f"k{i}", _reply())
    assert len(cache) == 2


async def test_put_replaces_and_refreshes() -> None:
    cache = ResponseCache(max_entries=2)
    await cache.put("a", _reply("a"))
    await cache.put("b", _reply("b"))
    await cache.put("a", _reply("a2"))
    await cache.put("c", _reply("c"))
    assert await cache.get("b") is None
    got = await cache.get("a")
    assert got is not None and got.text == "a2"


async def test_ttl_expiry_with_a_fake_clock() -> None:
    clock = FakeClock()
    cache = ResponseCache(default_ttl=10.0, clock=clock)
    await cache.put("default", _reply())
    await cache.put("short", _reply(), ttl=2.0)
    await cache.put("never", _reply(), ttl=0)
    assert await cache.get("never") is None
    clock.now += 1.999
    assert await cache.get("short") is not None
    clock.now += 0.001
    assert await cache.get("short") is None
    assert len(cache) == 1  # dropped when looked up
    clock.now += 7.999
    assert await cache.get("default") is not None
    clock.now += 0.001
    assert await cache.get("default") is None


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        ResponseCache(max_entries=0)
    with pytest.raises(ValueError):
        ResponseCache(default_ttl=0)


# -- record and replay ---------------------------------------------------------------------


def _completed(reason: FinishReason = FinishReason.STOP, usage: Usage | None = None) -> Completed:
    return Completed(reason, "stop", usage or Usage(120, 8, 64, 0), overhead=0.01, cost_usd=0.02)


def test_record_and_replay_text() -> None:
    events: list[CallEvent] = [
        Started("req_1", "openai", "gpt-4o-mini"),
        UsageUpdate(Usage(120, 0)),
        TextDelta("Hello"),
        TextDelta(", "),
        TextDelta("world"),
        _completed(),
    ]
    reply = record_reply(events)
    assert reply == CachedReply(
        "openai",
        "gpt-4o-mini",
        "Hello, world",
        (),
        FinishReason.STOP,
        "stop",
        Usage(120, 8, 64, 0),
        0.02,
    )
    out = replay(reply, "req_2")
    assert out == [
        Started("req_2", "openai", "gpt-4o-mini", cache_hit=True),
        TextDelta("Hello, world"),
        Completed(FinishReason.STOP, "stop", Usage(120, 8, 64, 0), cache_hit=True),
    ]
    chunks = [e.text for e in replay(reply, "req_3", chunk_chars=5) if isinstance(e, TextDelta)]
    assert chunks == ["Hello", ", wor", "ld"]
    assert record_reply(out) == replace(reply, cost_usd=0.0)


def test_record_and_replay_tool_calls() -> None:
    events: list[CallEvent] = [
        Started("req_1", "anthropic", "claude-test"),
        TextDelta("Let me check."),
        ToolCallDelta(0, id="call_a", name="get_weather"),
        ToolCallDelta(0, arguments_delta='{"city":'),
        ToolCallDelta(1, id="call_b", name="get_time", arguments_delta='{"tz":"UTC"}'),
        ToolCallDelta(0, arguments_delta='"Oslo"}'),
        _completed(FinishReason.TOOL_CALLS),
    ]
    reply = record_reply(events)
    assert reply is not None
    assert reply.text == "Let me check."
    assert reply.tool_calls == (
        CachedToolCall("call_a", "get_weather", '{"city":"Oslo"}'),
        CachedToolCall("call_b", "get_time", '{"tz":"UTC"}'),
    )
    assert reply.reason is FinishReason.TOOL_CALLS
    out = replay(reply, "req_2")
    assert out[2:4] == [
        ToolCallDelta(0, id="call_a", name="get_weather", arguments_delta='{"city":"Oslo"}'),
        ToolCallDelta(1, id="call_b", name="get_time", arguments_delta='{"tz":"UTC"}'),
    ]
    assert record_reply(out) == replace(reply, cost_usd=0.0)


def test_record_follows_switches() -> None:
    a, b = Target("openai", "gpt-4o-mini"), Target("anthropic", "claude-test")

    def events(policy: MidStreamPolicy) -> list[CallEvent]:
        return [
            Started("r", a.provider, a.model),
            TextDelta("Hel"),
            Switched(a, b, Reason.STREAM_INTERRUPTED, policy),
            TextDelta("lo" if policy is MidStreamPolicy.CONTINUE else "Hello"),
            _completed(),
        ]

    restarted = record_reply(events(MidStreamPolicy.RESTART))
    continued = record_reply(events(MidStreamPolicy.CONTINUE))
    assert restarted is not None and continued is not None
    assert restarted.text == continued.text == "Hello"
    assert (restarted.provider, restarted.model) == ("anthropic", "claude-test")


def test_an_incomplete_call_records_nothing() -> None:
    assert record_reply([Started("r", "p", "m"), TextDelta("partial")]) is None
    assert record_reply([TextDelta("x"), _completed()]) is None
    assert record_reply([]) is None


def test_recorded_usage_is_a_copy() -> None:
    usage = Usage(10, 2)
    reply = record_reply([Started("r", "p", "m"), _completed(usage=usage)])
    usage.input_tokens = 999
    assert reply is not None and reply.usage.input_tokens == 10


def test_record_and_replay_keep_thinking_blocks() -> None:
    events: list[CallEvent] = [
        Started("req_1", "anthropic", "claude-test"),
        ReasoningDelta("Let me ", 0),
        ReasoningDelta("see.", 0),
        ReasoningDelta("", 0, signature="c2ln+/=="),
        ReasoningDelta("", 1, redacted_data="EmwKAhgB"),
        TextDelta("Yes."),
        _completed(),
    ]
    reply = record_reply(events)
    assert reply is not None and reply.text == "Yes."
    blocks = (ThinkingBlock("Let me see.", "c2ln+/=="), ThinkingBlock(redacted_data="EmwKAhgB"))
    assert reply.thinking == blocks
    out = replay(reply, "req_2")
    assert out[1:4] == [
        ReasoningDelta("Let me see.", 0),
        ReasoningDelta("", 0, signature="c2ln+/=="),
        ReasoningDelta("", 1, redacted_data="EmwKAhgB"),
    ]
    assert record_reply(out) == replace(reply, cost_usd=0.0)
    assert CachedReply.from_bytes(reply.to_bytes()) == reply


def test_serialization_round_trip() -> None:
    reply = CachedReply(
        "anthropic",
        "claude-test",
        "héllo ✓",
        (CachedToolCall("c", "t", '{"a":1}'),),
        FinishReason.LENGTH,
        "max_tokens",
        Usage(1, 2, 3, 4, 5, True),
        0.5,
    )
    assert CachedReply.from_bytes(reply.to_bytes()) == reply
    stopped = replace(reply, reason=FinishReason.STOP, provider_reason="stop_sequence")
    stopped = replace(stopped, stop_sequence="END")
    assert CachedReply.from_bytes(stopped.to_bytes()) == stopped
    replayed = replay(stopped, "req_3")[-1]
    assert isinstance(replayed, Completed) and replayed.stop_sequence == "END"
    assert record_reply(replay(stopped, "req_3")) == replace(stopped, cost_usd=0.0)
    with pytest.raises(ValueError):
        CachedReply.from_bytes(b'{"p": "x"}')
    with pytest.raises(ValueError):
        CachedReply.from_bytes(b"not json")


def test_record_replay_and_serialize_vectors() -> None:
    vectors = (pack_floats((0.1, -2.5e-8, 3.0)), pack_floats((1 / 3, 0.0, -1.0)))
    events: list[CallEvent] = [
        Started("r1", "openai", "text-embedding-3-small"),
        Embeddings(vectors),
        Completed(FinishReason.STOP, "", Usage(7), cost_usd=0.25),
    ]
    reply = record_reply(events)
    assert reply is not None and reply.vectors == vectors and reply.floats == 6
    assert CachedReply.from_bytes(reply.to_bytes()) == reply
    assert _reply().vectors is None and CachedReply.from_bytes(_reply().to_bytes()).vectors is None
    out = replay(reply, "r2")
    assert out == [
        Started("r2", "openai", "text-embedding-3-small", cache_hit=True),
        Embeddings(vectors),
        Completed(FinishReason.STOP, "", Usage(7), cache_hit=True),
    ]


# -- Redis ---------------------------------------------------------------------------------


@pytest.fixture
def namespace(redis_server: str) -> Iterator[str]:
    """A namespace of this test's own, deleted afterwards."""
    ns = f"llmesh-test-rc:{uuid.uuid4().hex}"
    yield ns
    client = redis.Redis.from_url(redis_server)
    try:
        keys = list(client.scan_iter(match=f"{ns}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def shared(redis_server: str, namespace: str) -> AsyncIterator[ResponseCache]:
    cache = ResponseCache(redis_url=redis_server, namespace=namespace)
    yield cache
    await cache.aclose()


async def test_redis_round_trip_shared_between_replicas(
    shared: ResponseCache, redis_server: str, namespace: str
) -> None:
    key = cache_key("fast", (), ChatRequest((Message(Role.USER, "hello"),)), tenant="acme")
    assert await shared.get(key) is None
    reply = _reply(tool_calls=(CachedToolCall("c", "t", "{}"),), usage=Usage(5, 6))
    await shared.put(key, reply)
    other = ResponseCache(redis_url=redis_server, namespace=namespace)
    try:
        assert await other.get(key) == reply
    finally:
        await other.aclose()
    elsewhere = ResponseCache(redis_url=redis_server, namespace=namespace + "-other")
    try:
        assert await elsewhere.get(key) is None
    finally:
        await elsewhere.aclose()


async def test_redis_expiry_is_set_from_the_ttl(
    shared: ResponseCache, redis_server: str, namespace: str
) -> None:
    await shared.put("default", _reply())
    await shared.put("short", _reply(), ttl=1.5)
    await shared.put("never", _reply(), ttl=-1)
    client = redis.Redis.from_url(redis_server)
    try:
        assert 299_000 < client.pttl(f"{namespace}:default") <= 300_000
        assert 1_000 < client.pttl(f"{namespace}:short") <= 1_500
        assert not client.exists(f"{namespace}:never")
        client.set(f"{namespace}:garbage", b"not a reply")
    finally:
        client.close()
    assert await shared.get("garbage") is None  # unreadable entries are misses


async def test_redis_expiry_takes_effect(shared: ResponseCache) -> None:
    await shared.put("k", _reply(), ttl=0.05)
    assert await shared.get("k") is not None
    await asyncio.sleep(0.1)
    assert await shared.get("k") is None


async def test_redis_keeps_embedding_vectors(shared: ResponseCache) -> None:
    vectors = (pack_floats((0.5, 1 / 3)), pack_floats((-1e-9, 2.0)))
    reply = CachedReply("openai", "e", usage=Usage(3), vectors=vectors)
    await shared.put("re2:k", reply)
    assert await shared.get("re2:k") == reply


async def test_an_unreachable_redis_is_a_miss_not_a_failure() -> None:
    cache = ResponseCache(redis_url="redis://127.0.0.1:1/0", redis_timeout=0.2)
    await cache.put("k", _reply())
    assert await cache.get("k") is None
    await cache.aclose()
