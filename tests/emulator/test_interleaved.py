"""Interleaved thinking in the emulator: with the beta header, thinking on and a tool called,
a reply thinks again after its tool calls (thinking, tool_use, thinking, text), streamed or
not, and the turn sent back in another order is refused as Anthropic refuses it."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from llmesh.services.emulator.thinking import INTERLEAVED_BETA, sign
from tests.emulator.helpers import MODEL
from tests.emulator.test_anthropic_api import events

THINKING: dict[str, Any] = {"type": "enabled", "budget_tokens": 1024}
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ASK: list[Any] = [{"role": "user", "content": "call get_weather for Paris"}]
BETA = {"anthropic-beta": f"other-beta, {INTERLEAVED_BETA}"}
INTERLEAVED = ["thinking", "tool_use", "thinking", "text"]


async def _first(ant: anthropic.AsyncAnthropic, **extra: Any) -> anthropic.types.Message:
    return await ant.messages.create(
        model=MODEL, max_tokens=2048, messages=ASK, tools=[WEATHER], thinking=THINKING, **extra
    )


async def test_the_beta_interleaves_thinking_after_the_tool_call(
    ant: anthropic.AsyncAnthropic,
) -> None:
    plain = await _first(ant)
    mixed = await _first(ant, extra_headers=BETA)
    assert [b.type for b in plain.content] == ["thinking", "tool_use"]
    assert [b.type for b in mixed.content] == INTERLEAVED
    second = mixed.content[2]
    assert second.type == "thinking"
    assert second.signature == sign(second.thinking, "thinking,tool_use")
    assert mixed.content[3].text == "Calling get_weather."  # type: ignore[union-attr]
    assert mixed.usage.output_tokens > plain.usage.output_tokens
    assert mixed.stop_reason == "tool_use"


async def test_the_stream_interleaves_the_same_blocks(
    ant: anthropic.AsyncAnthropic, http: httpx.AsyncClient
) -> None:
    whole = await _first(ant, extra_headers=BETA)
    body = {
        "model": MODEL,
        "max_tokens": 2048,
        "messages": ASK,
        "tools": [WEATHER],
        "thinking": THINKING,
        "stream": True,
    }
    got = await events(http, body, headers=BETA)
    starts = [
        (d["index"], d["content_block"]["type"]) for n, d in got if n == "content_block_start"
    ]
    assert starts == list(enumerate(INTERLEAVED))
    stops = [d["index"] for n, d in got if n == "content_block_stop"]
    assert stops == [0, 1, 2, 3]
    signatures = [
        d["delta"]["signature"]
        for n, d in got
        if n == "content_block_delta" and d["delta"]["type"] == "signature_delta"
    ]
    assert signatures == [b.signature for b in whole.content if b.type == "thinking"]
    (final,) = [d for n, d in got if n == "message_delta"]
    assert final["usage"]["output_tokens"] == whole.usage.output_tokens


@pytest.mark.parametrize("regroup", [False, True])
async def test_the_turn_must_come_back_in_its_order(
    ant: anthropic.AsyncAnthropic, regroup: bool
) -> None:
    first = await _first(ant, extra_headers=BETA)
    blocks = [b.model_dump(exclude_none=True) for b in first.content]
    if regroup:  # thinking, then text, then tool calls: what a regrouping carrier would send
        rank = {"thinking": 0, "text": 1, "tool_use": 2}
        blocks.sort(key=lambda b: rank[b["type"]])
    (use,) = [b for b in blocks if b["type"] == "tool_use"]
    result = {"type": "tool_result", "tool_use_id": use["id"], "content": "sunny"}
    turn2 = [*ASK, {"role": "assistant", "content": blocks}, {"role": "user", "content": [result]}]
    call = ant.messages.create(
        model=MODEL,
        max_tokens=2048,
        messages=turn2,
        tools=[WEATHER],  # type: ignore[list-item]
        thinking=THINKING,
        extra_headers=BETA,
    )
    if regroup:
        with pytest.raises(anthropic.BadRequestError) as info:
            await call
        assert "messages.1.content.1" in info.value.message
        assert "signature" in info.value.message
    else:
        reply = await call
        assert reply.content[-1].text == "Tool result: sunny"  # type: ignore[union-attr]
