"""The Anthropic Messages API on the gateway, driven by the official ``anthropic`` SDK
(unchanged, ``base_url`` the gateway) against the emulator through Anthropic and OpenAI
models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.support.mesh import Mesh

CLAUDE = "anthropic/claude-sonnet-4-6"
GPT = "openai/gpt-4o-mini"
HELLO: list[Any] = [{"role": "user", "content": "hello there"}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
async def client(mesh: Mesh) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=mesh.gateway_url, api_key="unused", max_retries=0, timeout=20
    ) as c:
        yield c


@pytest.mark.parametrize("model", [CLAUDE, GPT])
async def test_create_plain(client: anthropic.AsyncAnthropic, model: str) -> None:
    reply = await client.messages.create(
        model=model, max_tokens=256, system="be brief", messages=HELLO
    )
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.id.startswith("msg_")
    assert reply.model == model
    assert [b.type for b in reply.content] == ["text"]
    assert reply.content[0].text == "hello there"  # type: ignore[union-attr]
    assert reply.stop_reason == "end_turn"
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens == 2


@pytest.mark.parametrize("model", [CLAUDE, GPT])
async def test_stream_text_and_final_message(client: anthropic.AsyncAnthropic, model: str) -> None:
    async with client.messages.stream(model=model, max_tokens=256, messages=HELLO) as stream:
        texts = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "hello there"
    assert final.content[0].text == "hello there"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 2 and final.usage.input_tokens > 0


async def test_stream_event_sequence(mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=mesh.gateway_url, timeout=20) as http:
        body = {"model": CLAUDE, "max_tokens": 64, "messages": HELLO, "stream": True}
        async with http.stream(
            "POST", "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}
        ) as r:
            text = (await r.aread()).decode()
    names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    deltas = names.count("content_block_delta")
    assert deltas >= 1
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


@pytest.mark.parametrize("model", [CLAUDE, GPT])
async def test_tool_use_over_two_turns(client: anthropic.AsyncAnthropic, model: str) -> None:
    ask: list[Any] = [{"role": "user", "content": "call get_weather for Paris"}]
    first = await client.messages.create(
        model=model,
        max_tokens=256,
        messages=ask,
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and isinstance(use.input, dict) and "city" in use.input
    result = {
        "type": "tool_result",
        "tool_use_id": use.id,
        "content": "sunny, 21 degrees",
    }
    turn2 = [
        *ask,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [result]},
    ]
    async with client.messages.stream(
        model=model,
        max_tokens=256,
        messages=turn2,
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        second = await stream.get_final_message()
    assert second.stop_reason == "end_turn"
    assert second.content[0].text  # type: ignore[union-attr]


async def test_streamed_tool_use_carries_input_json(client: anthropic.AsyncAnthropic) -> None:
    ask: list[Any] = [{"role": "user", "content": "call get_weather for Paris"}]
    async with client.messages.stream(
        model=CLAUDE,
        max_tokens=256,
        messages=ask,
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        final = await stream.get_final_message()
    (use,) = final.content
    assert use.type == "tool_use" and use.id and use.input == {"city": "call get_weather for Paris"}


@pytest.mark.parametrize("model", [CLAUDE, GPT])
async def test_thinking_with_signatures_over_two_turns(
    client: anthropic.AsyncAnthropic, model: str
) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    async with client.messages.stream(
        model=model, max_tokens=2048, thinking=thinking, messages=HELLO
    ) as stream:
        first = await stream.get_final_message()
    kinds = [b.type for b in first.content]
    if model == CLAUDE:
        assert kinds == ["thinking", "text"]
        block = first.content[0]
        assert block.type == "thinking" and block.thinking and block.signature
        whole = await client.messages.create(
            model=model, max_tokens=2048, thinking=thinking, messages=HELLO
        )
        assert whole.content[0] == block  # the same signed block, streamed or not
    else:
        assert kinds == ["text"]  # an OpenAI model shows no thinking
    turn2 = [
        *HELLO,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": "and again"},
    ]
    # The emulator refuses a thinking block whose signature is not byte-for-byte its own.
    second = await client.messages.create(
        model=model, max_tokens=2048, thinking=thinking, messages=turn2
    )
    assert second.content[-1].text == "and again"  # type: ignore[union-attr]


async def test_a_forged_signature_is_refused_by_the_anthropic_target(
    client: anthropic.AsyncAnthropic,
) -> None:
    turn2 = [
        *HELLO,
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "forged"},
                {"type": "text", "text": "hello there"},
            ],
        },
        {"role": "user", "content": "and again"},
    ]
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(
            model=CLAUDE,
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=turn2,  # type: ignore[arg-type]
        )
    assert "signature" in info.value.message


async def test_redacted_thinking_to_an_openai_model_is_a_400(
    client: anthropic.AsyncAnthropic,
) -> None:
    turn2 = [
        *HELLO,
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "opaque"}]},
        {"role": "user", "content": "and again"},
    ]
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(model=GPT, max_tokens=64, messages=turn2)  # type: ignore[arg-type]
    assert "redacted_data" in info.value.message


async def test_a_beta_no_route_allows_is_a_400_naming_the_header(
    client: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(
            model=CLAUDE,
            max_tokens=64,
            messages=HELLO,
            extra_headers={"anthropic-beta": "context-1m-2025-08-07"},
        )
    assert "anthropic-beta" in info.value.message


async def test_cache_control_breakpoints_reach_the_anthropic_target(
    client: anthropic.AsyncAnthropic,
) -> None:
    rules = " ".join(f"rule{i}" for i in range(1500))  # over the minimum cacheable prefix
    # The breakpoint is on the last block: everything is cached, nothing is left over. An
    # automatic one would go before the question (on the system prompt), leaving it over.
    marked: Any = {"type": "text", "text": "what now", "cache_control": {"type": "ephemeral"}}
    question: Any = [{"role": "user", "content": [marked]}]
    model = "anthropic/claude-sonnet-4-6"
    first = await client.messages.create(
        model=model, max_tokens=64, system=rules, messages=question
    )
    again = await client.messages.create(
        model=model, max_tokens=64, system=rules, messages=question
    )
    written = first.usage.cache_creation_input_tokens
    assert written and written > 1500
    assert again.usage.cache_read_input_tokens == written
    assert again.usage.input_tokens == first.usage.input_tokens
    plain = await client.messages.create(
        model=model,
        max_tokens=64,
        system=rules,
        messages=[{"role": "user", "content": "what now"}],
    )
    # llmesh's own breakpoint goes before the question: less is cached, more is left over
    u = plain.usage
    assert (u.cache_creation_input_tokens or 0) + (u.cache_read_input_tokens or 0) < written
    assert u.input_tokens > first.usage.input_tokens


async def test_count_tokens(client: anthropic.AsyncAnthropic) -> None:
    short = await client.messages.count_tokens(model=CLAUDE, messages=HELLO)
    longer = await client.messages.count_tokens(
        model=CLAUDE, system="you are terse", messages=[{"role": "user", "content": "hello " * 50}]
    )
    assert 0 < short.input_tokens < longer.input_tokens


async def test_errors_map_to_the_sdk_exception_types(
    mesh: Mesh, client: anthropic.AsyncAnthropic
) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        await client.messages.create(
            model=CLAUDE, max_tokens=64, messages=HELLO, extra_body={"top_k": 5}
        )
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "top_k" in bad.value.message
    mesh.set_fault("claude-msg-overloaded", "overloaded")
    with pytest.raises(anthropic.OverloadedError):
        await client.messages.create(
            model="anthropic/claude-msg-overloaded", max_tokens=64, messages=HELLO
        )
    mesh.set_fault("claude-msg-limited", "rate_limit", retry_after=0)
    with pytest.raises(anthropic.RateLimitError):
        await client.messages.create(
            model="anthropic/claude-msg-limited", max_tokens=64, messages=HELLO
        )
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.create(model="nobody/nothing", max_tokens=64, messages=HELLO)


async def test_an_error_after_the_stream_started_is_an_error_event(
    mesh: Mesh, client: anthropic.AsyncAnthropic
) -> None:
    mesh.set_fault("claude-msg-midstream", "stream_error", after=1)
    texts: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        async with client.messages.stream(
            model="anthropic/claude-msg-midstream", max_tokens=64, messages=HELLO
        ) as stream:
            async for text in stream.text_stream:
                texts.append(text)
    assert texts == ["hello"]
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


async def test_models_in_anthropic_shape(client: anthropic.AsyncAnthropic, mesh: Mesh) -> None:
    page = await client.models.list()
    ids = [m.id for m in page.data]
    assert CLAUDE in ids and all(m.type == "model" for m in page.data)
    one = await client.models.retrieve(CLAUDE)
    assert one.id == CLAUDE and one.display_name
    async with httpx.AsyncClient(base_url=mesh.gateway_url) as http:
        openai_shape = (await http.get("/v1/models")).json()
    assert openai_shape["object"] == "list"
