"""Automatic Anthropic prompt-cache breakpoints: placement rules, limits and the emulator."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmesh.services.common.config import ProviderConfig, ResolvedProvider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ChatRequest, Message, Role, Tool
from llmesh.services.core.events import Finish
from llmesh.services.core.usage import Usage
from llmesh.services.emulator.app import start
from llmesh.services.emulator.settings import EmulatorSettings
from llmesh.services.orchestrator.providers.anthropic_sdk import AnthropicProvider
from llmesh.services.orchestrator.providers.anthropic_wire import to_provider_request
from llmesh.services.orchestrator.providers.prompt_cache import (
    estimate_tokens,
    minimum_cacheable_tokens,
    place_breakpoints,
)

EPHEMERAL = {"type": "ephemeral"}
MIN = 300
"""The minimum in these tests, with one token a character."""
LONG = "x" * 320


def chars(text: str) -> int:
    """One token per character: thresholds in tests read as lengths."""
    return len(text)


def place(body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("min_tokens", MIN)
    kwargs.setdefault("estimate", chars)
    return place_breakpoints(body, **kwargs)


def text(t: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": t, **extra}


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def tool(name: str, description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "input_schema": {"type": "object", "properties": {}},
    }


def markers(body: dict[str, Any]) -> list[tuple[str, int, int, Any]]:
    """Every breakpoint in `body`: (section, index, block, cache_control)."""
    found = []
    for i, t in enumerate(body.get("tools", [])):
        if "cache_control" in t:
            found.append(("tools", i, -1, t["cache_control"]))
    system = body.get("system", [])
    for i, b in enumerate(system if isinstance(system, list) else []):
        if "cache_control" in b:
            found.append(("system", i, -1, b["cache_control"]))
    for i, m in enumerate(body["messages"]):
        content = m["content"]
        for j, b in enumerate(content if isinstance(content, list) else []):
            if "cache_control" in b:
                found.append(("messages", i, j, b["cache_control"]))
    return found


def body_of(**parts: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [user(text("hi"))]} | parts


# -- the rules -----------------------------------------------------------------------------


def test_long_tools_get_a_breakpoint_on_the_last_definition() -> None:
    body = body_of(tools=[tool("a", LONG), tool("b")])
    assert markers(place(body)) == [("tools", 1, -1, EPHEMERAL)]


def test_short_tools_get_none() -> None:
    assert markers(place(body_of(tools=[tool("a"), tool("b")]))) == []


def test_system_is_marked_when_tools_and_system_reach_the_minimum() -> None:
    short_tools = [tool("a", "y" * 100)]  # about 175 characters of JSON: below the minimum
    body = body_of(tools=short_tools, system=[text("s" * 70), text("z" * 70)])
    assert markers(place(body)) == [("system", 1, -1, EPHEMERAL)]
    body = body_of(tools=short_tools, system=[text("s" * 70)])
    assert markers(place(body)) == []


def test_tools_and_system_both_marked_when_each_prefix_is_long() -> None:
    body = body_of(tools=[tool("a", LONG)], system=[text("be brief")])
    assert markers(place(body)) == [
        ("tools", 0, -1, EPHEMERAL),
        ("system", 0, -1, EPHEMERAL),
    ]


def test_the_prefix_before_the_final_user_turn_is_marked() -> None:
    messages = [user(text(LONG)), assistant(text("I read it.")), user(text("question?"))]
    assert markers(place(body_of(messages=messages))) == [("messages", 1, 0, EPHEMERAL)]


def test_a_document_merged_into_the_final_user_message_is_marked() -> None:
    """Consecutive user messages merge into one: the document block is the stable part."""
    messages = [user(text(LONG), text("question?"))]
    assert markers(place(body_of(messages=messages))) == [("messages", 0, 0, EPHEMERAL)]


def test_a_single_user_block_has_no_stable_prefix() -> None:
    assert markers(place(body_of(messages=[user(text(LONG))]))) == []


def test_short_conversations_get_no_message_breakpoint() -> None:
    messages = [user(text("hello")), assistant(text("hi")), user(text("more"))]
    assert markers(place(body_of(messages=messages))) == []


def test_tool_loop_marks_the_tool_use_before_the_results() -> None:
    call = {"type": "tool_use", "id": "t1", "name": "get", "input": {"q": "oslo"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}
    messages = [user(text(LONG)), assistant(text("calling"), call), user(result)]
    assert markers(place(body_of(messages=messages))) == [("messages", 1, 1, EPHEMERAL)]


def test_prefill_after_the_final_user_turn_is_not_part_of_the_prefix() -> None:
    messages = [user(text(LONG)), assistant(text("ok")), user(text("q")), assistant(text("{"))]
    assert markers(place(body_of(messages=messages))) == [("messages", 1, 0, EPHEMERAL)]


def test_all_three_rules_together() -> None:
    body = body_of(
        tools=[tool("a", LONG)],
        system=[text("be brief")],
        messages=[user(text("doc")), assistant(text("ok")), user(text("q"))],
    )
    assert [m[:3] for m in markers(place(body))] == [
        ("tools", 0, -1),
        ("system", 0, -1),
        ("messages", 1, 0),
    ]


def test_never_on_an_empty_block() -> None:
    body = body_of(
        system=[text(LONG), text("")],
        messages=[user(text(LONG)), assistant(text("ok"), text("")), user(text("q"))],
    )
    assert [m[:3] for m in markers(place(body))] == [("system", 0, -1), ("messages", 1, 0)]
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "s"}
    body = body_of(messages=[user(text(LONG)), assistant(thinking), user(text("q"))])
    assert markers(place(body)) == [("messages", 0, 0, EPHEMERAL)]  # thinking takes none


def test_string_system_and_content_become_blocks_only_when_marked() -> None:
    body = body_of(system=LONG, messages=[{"role": "user", "content": "hi"}])
    out = place(body)
    assert out["system"] == [text(LONG, cache_control=EPHEMERAL)]
    assert out["messages"] == [{"role": "user", "content": "hi"}]
    body = body_of(messages=[{"role": "user", "content": LONG}, user(text("q"))])
    assert place(body)["messages"][0]["content"] == [text(LONG, cache_control=EPHEMERAL)]


# -- limits, caller breakpoints, modes -----------------------------------------------------


def _all_candidates(**marked: bool) -> dict[str, Any]:
    return body_of(
        tools=[tool("a", LONG)],
        system=[text("be brief")],
        messages=[
            user(text("u1", cache_control=EPHEMERAL) if marked.get("u1") else text("u1")),
            assistant(text("a1", cache_control=EPHEMERAL) if marked.get("a1") else text("a1")),
            user(text("u2", cache_control=EPHEMERAL) if marked.get("u2") else text("u2")),
            assistant(text("a2")),
            user(text("q", cache_control=EPHEMERAL) if marked.get("q") else text("q")),
        ],
    )


def test_caller_breakpoints_are_kept_and_count_toward_four() -> None:
    out = place(_all_candidates(u1=True, a1=True))
    # two free slots, three candidates: the longest prefixes win
    assert [m[:3] for m in markers(out)] == [
        ("system", 0, -1),
        ("messages", 0, 0),
        ("messages", 1, 0),
        ("messages", 3, 0),
    ]


def test_never_more_than_four() -> None:
    out = place(_all_candidates(u1=True, a1=True, u2=True))
    assert len(markers(out)) == 4
    assert ("messages", 3, 0) in [m[:3] for m in markers(out)]
    four = _all_candidates(u1=True, a1=True, u2=True, q=True)
    assert place(four) == four


def test_more_than_four_from_the_caller_are_left_as_they_are() -> None:
    body = _all_candidates(u1=True, a1=True, u2=True, q=True)
    body["system"] = [text("be brief", cache_control=EPHEMERAL)]
    assert place(body) == body


def test_a_breakpoint_already_on_the_spot_is_not_doubled() -> None:
    body = body_of(system=[text(LONG, cache_control={"type": "ephemeral", "ttl": "1h"})])
    assert place(body) == body
    once = place(_all_candidates())
    assert place(once) == once


def test_off_places_none_and_strips_none() -> None:
    body = body_of(
        tools=[tool("a", LONG)],
        system=[text(LONG, cache_control=EPHEMERAL)],
        messages=[user(text(LONG)), assistant(text("ok")), user(text("q"))],
    )
    out = place(body, mode="off")
    assert out == body
    assert markers(out) == [("system", 0, -1, EPHEMERAL)]


def test_the_input_is_never_modified() -> None:
    body = _all_candidates(u1=True)
    before = copy.deepcopy(body)
    out = place(body)
    assert body == before
    assert out != body
    assert out["messages"][4] is body["messages"][4]  # untouched parts are shared, not copied


# -- ttl -----------------------------------------------------------------------------------


def test_ttl_shape() -> None:
    body = body_of(system=[text(LONG)])
    assert markers(place(body, ttl="5m")) == [("system", 0, -1, {"type": "ephemeral"})]
    assert markers(place(body, ttl="1h")) == [("system", 0, -1, {"type": "ephemeral", "ttl": "1h"})]
    assert markers(place(body, ttl="")) == [("system", 0, -1, {"type": "ephemeral"})]


def test_an_hour_never_follows_five_minutes() -> None:
    """Anthropic requires longer TTLs first: a caller's 5m mark shortens later auto marks."""
    body = body_of(
        tools=[tool("a", LONG), {**tool("b"), "cache_control": EPHEMERAL}],
        system=[text("be brief")],
    )
    assert markers(place(body, ttl="1h"))[-1] == ("system", 0, -1, EPHEMERAL)
    hour = {"type": "ephemeral", "ttl": "1h"}
    body = body_of(
        tools=[tool("a", LONG)],
        system=[text("be brief", cache_control=hour)],
    )
    assert markers(place(body, ttl="5m")) == [("system", 0, -1, hour)]  # no 5m before 1h
    assert markers(place(body, ttl="1h")) == [("tools", 0, -1, hour), ("system", 0, -1, hour)]


def test_unknown_mode_or_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        place(body_of(), mode="always")
    with pytest.raises(ValueError, match="ttl"):
        place(body_of(), ttl="24h")


# -- minimum lengths -----------------------------------------------------------------------


def test_minimum_is_inclusive() -> None:
    body = body_of(system=[text("x" * MIN)])
    assert len(markers(place(body))) == 1
    body = body_of(system=[text("x" * (MIN - 1))])
    assert markers(place(body)) == []


def test_minimum_follows_the_model() -> None:
    assert minimum_cacheable_tokens("claude-3-5-haiku-latest") == 2048
    assert minimum_cacheable_tokens("claude-sonnet-4-5") == 1024
    assert minimum_cacheable_tokens("claude-opus-4-1") == 1024
    system = [text("w" * 1500)]  # 1,500 tokens at one a character
    sonnet = {**body_of(system=system), "model": "claude-sonnet-4-5"}
    haiku = {**body_of(system=system), "model": "claude-3-5-haiku-latest"}
    assert len(markers(place_breakpoints(sonnet, estimate=chars))) == 1
    assert markers(place_breakpoints(haiku, estimate=chars)) == []
    assert len(markers(place_breakpoints(haiku, estimate=chars, model="claude-sonnet-4"))) == 1
    assert len(markers(place_breakpoints(haiku, estimate=chars, min_tokens=1500))) == 1


def test_default_estimate_is_three_and_a_half_characters_a_token() -> None:
    assert [estimate_tokens("a" * n) for n in (0, 1, 7, 8, 3500)] == [0, 1, 2, 3, 1000]
    system = [text("a" * 3584)]  # exactly 1,024 estimated tokens
    assert len(markers(place_breakpoints(body_of(system=system)))) == 1
    system = [text("a" * 3580)]  # 1,023
    assert markers(place_breakpoints(body_of(system=system))) == []


# -- through the wire format ---------------------------------------------------------------

LONG_SYSTEM = " ".join(f"rule{i}" for i in range(1200))
"""About 1,200 emulator tokens and 2,400 estimated: above every model's minimum."""


def _request(**kwargs: Any) -> ChatRequest:
    messages = (Message(Role.SYSTEM, LONG_SYSTEM), Message(Role.USER, "hello there"))
    return ChatRequest(messages, **kwargs)


def test_to_provider_request_places_breakpoints_from_the_request() -> None:
    body = to_provider_request("claude-test", _request())
    assert body["system"] == [text(LONG_SYSTEM, cache_control=EPHEMERAL)]
    body = to_provider_request("claude-test", _request(prompt_cache_ttl="1h"))
    assert body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    body = to_provider_request("claude-test", _request(prompt_cache="off"))
    assert body["system"] == [text(LONG_SYSTEM)]
    short = ChatRequest((Message(Role.USER, "hi"),), tools=(Tool("t"),))
    assert markers(to_provider_request("claude-test", short)) == []


def test_to_provider_request_refuses_an_unknown_mode() -> None:
    with pytest.raises(LlmeshError) as info:
        to_provider_request("claude-test", _request(prompt_cache="sometimes"))
    assert info.value.reason is Reason.INVALID_REQUEST


# -- against the emulator's prompt cache ---------------------------------------------------


@pytest.fixture
async def emulator() -> AsyncIterator[str]:
    runner, port = await start(EmulatorSettings(host="127.0.0.1", port=0))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _usage(url: str, request: ChatRequest) -> Usage:
    config = ProviderConfig("anthropic", "anthropic", timeout=10.0)
    provider = AnthropicProvider(ResolvedProvider(config, url, "sk-ant-test", True))
    try:
        events = [e async for e in provider.stream("claude-test", request, timeout=10.0)]
    finally:
        await provider.aclose()
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.usage is not None
    return finish.usage


async def test_second_identical_call_reads_the_cached_system_prompt(emulator: str) -> None:
    first = await _usage(emulator, _request())
    second = await _usage(emulator, _request())
    assert first.cache_write_tokens >= 1024 and first.cache_read_tokens == 0
    assert second.cache_read_tokens == first.cache_write_tokens > 0
    assert second.cache_write_tokens == 0
    assert second.input_tokens == first.input_tokens


async def test_off_mode_caches_nothing_at_the_provider(emulator: str) -> None:
    for _ in range(2):
        usage = await _usage(emulator, _request(prompt_cache="off"))
        assert (usage.cache_read_tokens, usage.cache_write_tokens) == (0, 0)
