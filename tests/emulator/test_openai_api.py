"""The OpenAI Chat Completions API through the official ``openai`` SDK, and on the wire."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from llmesh.services.emulator.replies import MESSAGE_OVERHEAD, REPLY_OVERHEAD
from tests.emulator.helpers import MODEL, PIECES, USER

PROMPT = MESSAGE_OVERHEAD + len(PIECES) + REPLY_OVERHEAD
TEXT_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": TEXT_SCHEMA}},
    {"type": "function", "function": {"name": "get_time", "parameters": TEXT_SCHEMA}},
]
LONG = " ".join(["word"] * 1100)


def user(text: str = USER) -> list[Any]:
    return [{"role": "user", "content": text}]


async def sse(http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[httpx.Response, list[str]]:
    """POST a streamed request and return the response and its raw lines."""
    async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
        lines = [line async for line in resp.aiter_lines()]
    return resp, lines


async def test_non_stream_text_and_usage(oai: openai.AsyncOpenAI) -> None:
    raw = await oai.chat.completions.with_raw_response.create(model=MODEL, messages=user())
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.message.content == USER
    assert choice.message.role == "assistant"
    assert choice.message.refusal is None
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        PROMPT,
        9,
        PROMPT + 9,
    )
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details
    assert usage.completion_tokens_details.reasoning_tokens == 0
    headers = raw.headers
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"].startswith("req_")
    assert int(headers["openai-processing-ms"]) >= 0
    for kind in ("requests", "tokens"):
        for what in ("limit", "remaining", "reset"):
            assert headers[f"x-ratelimit-{what}-{kind}"]


async def test_stream_text_one_chunk_per_piece(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(model=MODEL, messages=user(), stream=True)
    chunks = [c async for c in stream]
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)
    first, *middle, last = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert [c.choices[0].delta.content for c in middle] == PIECES
    assert all(c.choices[0].finish_reason is None for c in [first, *middle])
    assert last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.content is None


async def test_stream_include_usage_adds_a_final_usage_chunk(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model=MODEL, messages=user(), stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        PROMPT,
        9,
        PROMPT + 9,
    )
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0


async def test_stream_wire_format(http: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "messages": user("a b"), "stream": True}
    resp, lines = await sse(http, {**body, "stream_options": {"include_usage": True}})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert resp.headers["x-request-id"].startswith("req_")
    events = [line for line in lines if line]
    assert all(line.startswith("data: ") for line in events)  # bare data lines, no event names
    assert lines[1::2] == [""] * (len(lines) // 2)  # each event ends with a blank line
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(line[6:]) for line in events[:-1]]
    assert all("usage" in p for p in payloads)
    assert [p["usage"] for p in payloads[:-1]] == [None] * (len(payloads) - 1)
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["completion_tokens"] == 2
    assert payloads[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    resp, lines = await sse(http, body)
    assert all(json.loads(x[6:])["choices"] for x in lines if x and x != "data: [DONE]")


async def test_tool_calls_non_stream(oai: openai.AsyncOpenAI) -> None:
    text = "what is get_time and get_weather"
    completion = await oai.chat.completions.create(model=MODEL, messages=user(text), tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # tools-list order
    assert all(json.loads(c.function.arguments) == {"text": text} for c in calls)
    assert all(c.id.startswith("call_") for c in calls) and calls[0].id != calls[1].id
    again = await oai.chat.completions.create(model=MODEL, messages=user(text), tools=TOOLS)
    assert [c.id for c in again.choices[0].message.tool_calls or []] == [c.id for c in calls]


async def test_tool_calls_stream_in_argument_fragments(oai: openai.AsyncOpenAI) -> None:
    text = "use get_weather and get_time please"
    stream = await oai.chat.completions.create(
        model=MODEL, messages=user(text), tools=TOOLS, stream=True
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content is None
    calls: dict[int, dict[str, Any]] = {}
    fragments = 0
    for chunk in chunks:
        for tc in chunk.choices[0].delta.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            if tc.id:
                assert slot["id"] is None and slot["arguments"] == ""  # id and name come first
                slot["id"], slot["name"] = tc.id, tc.function and tc.function.name
            if tc.function and tc.function.arguments:
                slot["arguments"] += tc.function.arguments
                fragments += 1
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert all(json.loads(c["arguments"]) == {"text": text} for c in calls.values())
    assert fragments > 4
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_stream_helper_accumulates_tool_calls(oai: openai.AsyncOpenAI) -> None:
    async with oai.chat.completions.stream(
        model=MODEL, messages=user("call get_time"), tools=TOOLS
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_time", {"text": "call get_time"})
    ]


async def test_tool_choice(oai: openai.AsyncOpenAI) -> None:
    none = await oai.chat.completions.create(
        model=MODEL, messages=user("get_weather"), tools=TOOLS, tool_choice="none"
    )
    assert none.choices[0].message.content == "get_weather"
    forced = await oai.chat.completions.create(
        model=MODEL,
        messages=user("hello"),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [c.function.name for c in forced.choices[0].message.tool_calls or []] == ["get_time"]
    required = await oai.chat.completions.create(
        model=MODEL, messages=user("hello"), tools=TOOLS, tool_choice="required"
    )
    assert [c.function.name for c in required.choices[0].message.tool_calls or []] == [
        "get_weather"
    ]


async def test_tool_result_reply(oai: openai.AsyncOpenAI) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    messages: list[Any] = [
        {"role": "user", "content": "get_weather"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
    ]
    completion = await oai.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert completion.choices[0].message.content == "Tool result: sunny, 21C"
    assert completion.choices[0].finish_reason == "stop"


async def test_max_tokens_and_stop(oai: openai.AsyncOpenAI) -> None:
    cut = await oai.chat.completions.create(model=MODEL, messages=user(), max_tokens=3)
    assert cut.choices[0].message.content == "The quick brown"
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage and cut.usage.completion_tokens == 3
    cut = await oai.chat.completions.create(model=MODEL, messages=user(), max_completion_tokens=2)
    assert cut.choices[0].message.content == "The quick"
    stopped = await oai.chat.completions.create(model=MODEL, messages=user(), stop=[" jumps"])
    assert stopped.choices[0].message.content == "The quick brown fox"
    assert stopped.choices[0].finish_reason == "stop"
    stream = await oai.chat.completions.create(
        model=MODEL, messages=user(), max_tokens=2, stream=True
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The quick"
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_n_choices(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(model=MODEL, messages=user("hi there"), n=2)
    assert [c.message.content for c in completion.choices] == ["hi there", "hi there"]
    assert completion.usage and completion.usage.completion_tokens == 4


async def test_automatic_prompt_caching(oai: openai.AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "system", "content": LONG}, {"role": "user", "content": "hi"}]
    first = await oai.chat.completions.create(model=MODEL, messages=messages)
    assert first.usage and first.usage.prompt_tokens_details
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    stream = await oai.chat.completions.create(
        model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    usage = [c async for c in stream][-1].usage
    assert usage and usage.prompt_tokens_details
    assert usage.prompt_tokens == first.usage.prompt_tokens == 3 + 1100 + 3 + 1 + 3
    assert usage.prompt_tokens_details.cached_tokens == 1024  # 1103 rounded down to 128s


async def test_cached_tokens_header_forces_the_count(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(
        model=MODEL, messages=user(), extra_headers={"x-emulator-cached-tokens": "5"}
    )
    assert completion.usage and completion.usage.prompt_tokens_details
    assert completion.usage.prompt_tokens_details.cached_tokens == 5
    assert completion.usage.prompt_tokens == PROMPT


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": MODEL}, "messages", "missing_required_parameter"),
        ({"messages": user()}, "model", "missing_required_parameter"),
        ({"model": MODEL, "messages": []}, "messages", "empty_array"),
        ({"model": MODEL, "messages": "hi"}, "messages", "invalid_type"),
        (
            {"model": MODEL, "messages": [{"role": "bogus", "content": "x"}]},
            "messages[0].role",
            "invalid_value",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user"}]},
            "messages[0].content",
            "missing_required_parameter",
        ),
        (
            {"model": MODEL, "messages": user(), "max_tokens": 0},
            "max_tokens",
            "integer_below_min_value",
        ),
        ({"model": MODEL, "messages": user(), "tool_choice": "auto"}, "tool_choice", None),
        (
            {"model": MODEL, "messages": user(), "stream_options": {"include_usage": True}},
            "stream_options",
            None,
        ),
    ],
)
async def test_validation_errors(
    http: httpx.AsyncClient, body: dict[str, Any], param: str, code: str | None
) -> None:
    resp = await http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert resp.headers["x-request-id"].startswith("req_")


async def test_validation_error_through_the_sdk(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(model=MODEL, messages=[{"role": "bogus", "content": "x"}])
    assert info.value.param == "messages[0].role"
    assert info.value.code == "invalid_value"


async def test_invalid_json(http: httpx.AsyncClient) -> None:
    resp = await http.post("/v1/chat/completions", content=b"{nope")
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"


async def test_models(oai: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in oai.models.list()]
    assert ids == [
        "echo",
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-4.1-mini",
        "o4-mini",
        "claude-haiku-4-5",
        "claude-sonnet-4-6",
        "claude-opus-4-6",
        "claude-3-haiku-20240307",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
    ]
    model = await oai.models.retrieve("gpt-4o")
    assert (model.id, model.object) == ("gpt-4o", "model")
    assert (await oai.models.retrieve("any-model-name")).id == "any-model-name"
