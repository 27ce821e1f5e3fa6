"""The Anthropic Messages API through the official ``anthropic`` SDK, and on the wire."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from llmesh.services.emulator.replies import MESSAGE_OVERHEAD, REPLY_OVERHEAD
from tests.emulator.helpers import MODEL, PIECES, USER

PROMPT = MESSAGE_OVERHEAD + len(PIECES) + REPLY_OVERHEAD
TEXT_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
TOOLS: list[Any] = [
    {"name": "get_weather", "input_schema": TEXT_SCHEMA},
    {"name": "get_time", "input_schema": TEXT_SCHEMA},
]
LONG = " ".join(["word"] * 1100)
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "k"}


def user(text: str = USER) -> list[Any]:
    return [{"role": "user", "content": text}]


async def events(
    http: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str] | None = None
) -> list[tuple[str, Any]]:
    """POST a streamed request (with `headers` besides the usual) and return its (event
    name, data) pairs."""
    out: list[tuple[str, Any]] = []
    sent = {**HEADERS, **(headers or {})}
    async with http.stream("POST", "/v1/messages", json=body, headers=sent) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
        name = None
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((str(name), json.loads(line[6:])))
    return out


async def test_non_stream_text_and_usage(ant: anthropic.AsyncAnthropic) -> None:
    raw = await ant.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=user())
    message = await raw.parse()
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.model == MODEL
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == USER
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (PROMPT, 9)
    assert usage.cache_creation_input_tokens == usage.cache_read_input_tokens == 0
    headers = raw.headers
    assert headers["request-id"].startswith("req_")
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        for what in ("limit", "remaining", "reset"):
            assert headers[f"anthropic-ratelimit-{kind}-{what}"]


async def test_stream_event_sequence(http: httpx.AsyncClient) -> None:
    seen = await events(
        http, {"model": MODEL, "max_tokens": 100, "messages": user(), "stream": True}
    )
    assert all(name == data["type"] for name, data in seen)  # event name equals JSON type
    names = [name for name, _ in seen]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 9,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = seen[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 1
    assert start["usage"]["input_tokens"] == PROMPT
    assert start["usage"]["cache_read_input_tokens"] == 0
    assert start["usage"]["cache_creation_input_tokens"] == 0
    assert seen[1][1]["content_block"] == {"type": "text", "text": ""}
    assert [d["delta"] for _, d in seen[3:12]] == [
        {"type": "text_delta", "text": p} for p in PIECES
    ]
    delta = seen[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {
        "input_tokens": PROMPT,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 9,
    }


async def test_stream_helper_text(ant: anthropic.AsyncAnthropic) -> None:
    async with ant.messages.stream(model=MODEL, max_tokens=100, messages=user()) as stream:
        texts = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert texts == PIECES
    assert final.content[0].text == USER
    assert final.usage.output_tokens == 9 and final.usage.input_tokens == PROMPT
    assert final.stop_reason == "end_turn"


async def test_tool_use_streams_input_json_deltas(http: httpx.AsyncClient) -> None:
    text = "get_time and get_weather"
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": user(text),
        "tools": TOOLS,
        "stream": True,
    }
    seen = await events(http, body)
    starts = [d for n, d in seen if n == "content_block_start"]
    assert [(s["index"], s["content_block"]["name"]) for s in starts] == [
        (0, "get_weather"),
        (1, "get_time"),
    ]
    assert all(s["content_block"]["input"] == {} for s in starts)
    assert all(s["content_block"]["id"].startswith("toolu_") for s in starts)
    for index in (0, 1):
        deltas = [d["delta"] for n, d in seen if n == "content_block_delta" and d["index"] == index]
        assert all(d["type"] == "input_json_delta" for d in deltas) and len(deltas) > 2
        assert json.loads("".join(d["partial_json"] for d in deltas)) == {"text": text}
    assert [d["index"] for n, d in seen if n == "content_block_stop"] == [0, 1]
    assert seen[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert not any(
        d["delta"].get("type") == "text_delta" for n, d in seen if n == "content_block_delta"
    )


async def test_tool_use_through_the_sdk(ant: anthropic.AsyncAnthropic) -> None:
    text = "please call get_weather"
    async with ant.messages.stream(
        model=MODEL, max_tokens=100, messages=user(text), tools=TOOLS
    ) as stream:
        kinds = {event.type async for event in stream}
        final = await stream.get_final_message()
    assert "input_json" in kinds
    assert final.stop_reason == "tool_use"
    block = final.content[0]
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.input == {"text": text}
    whole = await ant.messages.create(model=MODEL, max_tokens=100, messages=user(text), tools=TOOLS)
    assert whole.content[0].type == "tool_use" and whole.content[0].input == {"text": text}
    assert whole.content[0].id == block.id  # deterministic ids


async def test_tool_choice(ant: anthropic.AsyncAnthropic) -> None:
    forced = await ant.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=user("hi"),
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_time"},
    )
    assert [b.name for b in forced.content if b.type == "tool_use"] == ["get_time"]
    anyone = await ant.messages.create(
        model=MODEL, max_tokens=100, messages=user("hi"), tools=TOOLS, tool_choice={"type": "any"}
    )
    assert [b.name for b in anyone.content if b.type == "tool_use"] == ["get_weather"]
    single = await ant.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=user("get_weather get_time"),
        tools=TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    assert [b.name for b in single.content if b.type == "tool_use"] == ["get_weather"]


async def test_tool_result_reply(ant: anthropic.AsyncAnthropic) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "get_weather"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "windy"}],
                },
            ],
        },
    ]
    message = await ant.messages.create(model=MODEL, max_tokens=100, messages=messages, tools=TOOLS)
    assert message.content[0].text == "Tool result: sunny\nwindy"
    assert message.stop_reason == "end_turn"


async def test_max_tokens_and_stop_sequences(ant: anthropic.AsyncAnthropic) -> None:
    cut = await ant.messages.create(model=MODEL, max_tokens=3, messages=user())
    assert cut.content[0].text == "The quick brown"
    assert (cut.stop_reason, cut.usage.output_tokens) == ("max_tokens", 3)
    stopped = await ant.messages.create(
        model=MODEL, max_tokens=100, messages=user(), stop_sequences=["lazy", " fox"]
    )
    assert stopped.content[0].text == "The quick brown"
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", " fox")
    async with ant.messages.stream(
        model=MODEL, max_tokens=100, messages=user(), stop_sequences=[" over"]
    ) as stream:
        final = await stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", " over")


async def test_system_prompt_as_string_or_blocks(ant: anthropic.AsyncAnthropic) -> None:
    plain = await ant.messages.create(model=MODEL, max_tokens=9, messages=user(), system="Be brief")
    blocks = await ant.messages.create(
        model=MODEL, max_tokens=9, messages=user(), system=[{"type": "text", "text": "Be brief"}]
    )
    assert plain.usage.input_tokens == blocks.usage.input_tokens == PROMPT + MESSAGE_OVERHEAD + 2


async def test_prompt_caching_write_then_read(ant: anthropic.AsyncAnthropic) -> None:
    system: Any = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    first = await ant.messages.create(
        model=MODEL, max_tokens=10, system=system, messages=user("hi")
    )
    prefix = MESSAGE_OVERHEAD + 1100
    rest = MESSAGE_OVERHEAD + 1 + REPLY_OVERHEAD
    assert first.usage.cache_creation_input_tokens == prefix
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.input_tokens == rest  # excludes cached tokens
    assert (
        first.usage.cache_creation
        and first.usage.cache_creation.ephemeral_5m_input_tokens == prefix
    )
    async with ant.messages.stream(
        model=MODEL, max_tokens=10, system=system, messages=user("hi")
    ) as stream:
        second = await stream.get_final_message()
    assert second.usage.cache_read_input_tokens == prefix
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == rest
    count = await ant.messages.count_tokens(model=MODEL, system=system, messages=user("hi"))
    assert count.input_tokens == prefix + rest


async def test_prompt_caching_one_hour_ttl_on_a_tool(ant: anthropic.AsyncAnthropic) -> None:
    tools: Any = [
        {
            "name": "lookup",
            "description": LONG,
            "input_schema": {"type": "object"},
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    first = await ant.messages.create(model=MODEL, max_tokens=10, tools=tools, messages=user("hi"))
    assert first.usage.cache_creation and first.usage.cache_creation.ephemeral_1h_input_tokens
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 0
    second = await ant.messages.create(model=MODEL, max_tokens=10, tools=tools, messages=user("hi"))
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens


async def test_cached_tokens_header(ant: anthropic.AsyncAnthropic) -> None:
    message = await ant.messages.create(
        model=MODEL, max_tokens=10, messages=user(), extra_headers={"x-emulator-cached-tokens": "4"}
    )
    assert message.usage.cache_read_input_tokens == 4
    assert message.usage.input_tokens == PROMPT - 4


async def test_count_tokens(ant: anthropic.AsyncAnthropic) -> None:
    count = await ant.messages.count_tokens(model=MODEL, messages=user())
    assert count.input_tokens == PROMPT


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": MODEL, "messages": user()}, "max_tokens: Field required"),
        ({"model": MODEL, "max_tokens": 5}, "messages: Field required"),
        ({"max_tokens": 5, "messages": user()}, "model: Field required"),
        (
            {"model": MODEL, "max_tokens": 0, "messages": user()},
            "max_tokens: Input should be greater than or equal to 1",
        ),
        (
            {"model": MODEL, "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
    ],
)
async def test_validation_errors(
    http: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    resp = await http.post("/v1/messages", json=body, headers=HEADERS)
    assert resp.status_code == 400
    data = resp.json()
    assert data == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
        "request_id": resp.headers["request-id"],
    }


async def test_validation_error_through_the_sdk(ant: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await ant.messages.create(
            model=MODEL,
            max_tokens=5,
            messages=[{"role": "system", "content": "x"}],
        )
    assert info.value.type == "invalid_request_error"
    assert info.value.api_message == "messages.0.role: Input should be 'user' or 'assistant'"
    assert info.value.request_id and info.value.request_id.startswith("req_")


async def test_models_in_anthropic_shape(
    ant: anthropic.AsyncAnthropic, http: httpx.AsyncClient
) -> None:
    ids = [m.id async for m in ant.models.list(limit=3)]  # paginates
    assert ids[0] == "echo" and "claude-opus-4-6" in ids and len(ids) == 9
    model = await ant.models.retrieve("claude-opus-4-1")
    assert (model.type, model.id) == ("model", "claude-opus-4-1")
    page = (await http.get("/v1/models", params={"limit": 2}, headers=HEADERS)).json()
    assert page["has_more"] is True and (page["first_id"], page["last_id"]) == (
        "echo",
        "gpt-4o-mini",
    )
    assert set(page["data"][0]) >= {"type", "id", "display_name", "created_at"}
    openai_shape = (await http.get("/v1/models")).json()
    assert openai_shape["object"] == "list" and openai_shape["data"][0]["object"] == "model"
