"""The OpenAI-compatible API, driven by the official `openai` SDK (and raw HTTP for the wire)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from llmesh.v1 import chat_pb2
from tests.gateway.fakes import FakeMesh

HI: Any = [{"role": "user", "content": "hi"}]


async def test_non_streamed_text(openai_client: openai.AsyncOpenAI, fake_mesh: FakeMesh) -> None:
    raw = await openai_client.chat.completions.with_raw_response.create(
        model="fake/text", messages=HI, max_completion_tokens=20, temperature=0.2, user="u-1"
    )
    assert raw.headers["x-request-id"] == "req-text"
    reply = raw.parse()
    assert reply.id == "chatcmpl-req-text"
    assert reply.object == "chat.completion"
    assert reply.model == "fake/text"
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello, world"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (15, 5)
    assert reply.usage.total_tokens == 20
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 3
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 1
    seen = fake_mesh.orchestrator.calls[-1]
    assert seen.input.max_tokens == 20
    assert seen.input.temperature == pytest.approx(0.2)
    assert seen.input.metadata["user"] == "u-1"
    assert seen.metadata["authorization"] == "Bearer sk-test"


async def test_non_streamed_tool_calls(openai_client: openai.AsyncOpenAI) -> None:
    reply = await openai_client.chat.completions.create(model="fake/tools", messages=HI)
    message = reply.choices[0].message
    assert message.content is None
    assert reply.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls]  # type: ignore[union-attr]
    assert calls == [
        ("call_0", "get_weather", '{"city": "Paris"}'),
        ("call_1", "get_time", '{"tz": "CET"}'),
    ]


async def test_streamed_text_with_usage(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(
        model="fake/text", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert {c.id for c in chunks} == {"chatcmpl-req-text"}
    assert len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, world"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (15, 5)
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 3


async def test_streamed_tool_calls_join_per_index(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(
        model="fake/tools", messages=HI, stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        assert chunk.usage is None
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for d in choice.delta.tool_calls or []:
            call = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
            if d.id:
                call["id"] = d.id
                assert d.type == "function"
            if d.function and d.function.name:
                call["name"] = d.function.name
            if d.function and d.function.arguments:
                call["arguments"] += d.function.arguments
    assert finish == "tool_calls"
    assert calls == {
        0: {"id": "call_0", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "call_1", "name": "get_time", "arguments": '{"tz": "CET"}'},
    }


async def test_request_fields_reach_the_grpc_request(
    openai_client: openai.AsyncOpenAI, fake_mesh: FakeMesh
) -> None:
    await openai_client.chat.completions.create(
        model="fake/text",
        messages=[
            {"role": "developer", "content": "be terse"},
            {"role": "user", "content": [{"type": "text", "text": "weather?"}], "name": "ann"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather now",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stop="END",
        seed=42,
        top_p=0.9,
        max_tokens=64,
        metadata={"tenant": "acme"},
        extra_body={
            "fallbacks": ["fake/length", "fake/tools"],
            "max_cost_usd": 0.25,
            "cache": {"no_response_cache": True},
        },
    )
    chat = fake_mesh.orchestrator.calls[-1].input
    assert list(chat.fallbacks) == ["fake/length", "fake/tools"]
    assert (chat.max_cost_usd, chat.cache.no_response_cache) == (0.25, True)
    assert [m.role for m in chat.messages] == [
        chat_pb2.ROLE_SYSTEM,
        chat_pb2.ROLE_USER,
        chat_pb2.ROLE_ASSISTANT,
        chat_pb2.ROLE_TOOL,
    ]
    assert chat.messages[1].content == "weather?"
    assert chat.messages[1].name == "ann"
    assert chat.messages[2].tool_calls[0] == chat_pb2.ToolCall(
        id="c1", name="get_weather", arguments="{}"
    )
    assert chat.messages[3].tool_call_id == "c1"
    assert chat.tools[0].parameters["properties"]["city"]["type"] == "string"
    assert chat.tool_choice == chat_pb2.ToolChoice(
        mode=chat_pb2.TOOL_CHOICE_MODE_TOOL, name="get_weather"
    )
    assert (list(chat.stop), chat.seed, chat.max_tokens) == (["END"], 42, 64)
    assert chat.top_p == pytest.approx(0.9)
    assert dict(chat.metadata) == {"tenant": "acme"}


@pytest.mark.parametrize("stream", [False, True])
async def test_errors_raise_the_matching_sdk_class(
    openai_client: openai.AsyncOpenAI, stream: bool
) -> None:
    create = openai_client.chat.completions.create
    with pytest.raises(openai.NotFoundError) as not_found:
        await create(model="fake/nope", messages=HI, stream=stream)
    assert not_found.value.code == "model_not_found"
    assert not_found.value.type == "not_found_error"
    with pytest.raises(openai.RateLimitError) as limited:
        await create(model="fake/rate-limited", messages=HI, stream=stream)
    assert limited.value.code == "rate_limited"
    assert limited.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.BadRequestError) as bad:
        await create(model="fake/invalid", messages=HI, stream=stream)
    assert bad.value.param == "input.messages[0].content"
    with pytest.raises(openai.BadRequestError) as bad:
        content: Any = [{"type": "video_url", "video_url": {"url": "http://x/y.mp4"}}]
        await create(model="fake/text", messages=[{"role": "user", "content": content}])
    assert bad.value.param == "messages[0].content[0].type"
    assert bad.value.code == "invalid_request"


async def test_a_field_llmesh_cannot_honour_is_a_400_naming_it(
    openai_client: openai.AsyncOpenAI, fake_mesh: FakeMesh
) -> None:
    create = openai_client.chat.completions.create
    calls = len(fake_mesh.orchestrator.calls)
    with pytest.raises(openai.BadRequestError) as bad:
        await create(model="fake/text", messages=HI, store=True)
    assert (bad.value.param, bad.value.type) == ("store", "invalid_request_error")
    assert bad.value.code == "unsupported_parameter"
    assert "not supported yet" in bad.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        await create(model="fake/text", messages=HI, extra_body={"top_k": 5})
    assert (bad.value.param, bad.value.code) == ("top_k", "unknown_parameter")
    with pytest.raises(openai.BadRequestError) as bad:
        await create(model="fake/text", messages=[{**HI[0], "color": "red"}])  # type: ignore[list-item]
    assert (bad.value.param, bad.value.code) == ("messages[0].color", "unknown_parameter")
    assert len(fake_mesh.orchestrator.calls) == calls  # nothing went upstream
    # the defaults clients send explicitly are fine
    reply = await create(
        model="fake/text",
        messages=HI,
        n=1,
        presence_penalty=0,
        frequency_penalty=0,
        logprobs=False,
        parallel_tool_calls=True,
        response_format={"type": "text"},
    )
    assert reply.choices[0].message.content == "Hello, world"


async def test_a_reply_message_sent_back_as_history_is_accepted(
    openai_client: openai.AsyncOpenAI, fake_mesh: FakeMesh
) -> None:
    create = openai_client.chat.completions.create
    first = await create(model="fake/tools", messages=HI)
    history: Any = [
        *HI,
        first.choices[0].message,
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
    ]
    await create(model="fake/text", messages=history)
    chat = fake_mesh.orchestrator.calls[-1].input
    assert [c.name for c in chat.messages[1].tool_calls] == ["get_weather", "get_time"]


@pytest.mark.parametrize("model", ["fake/cut", "fake/no-finish"])
async def test_a_cut_stream_makes_the_sdk_raise(
    openai_client: openai.AsyncOpenAI, model: str
) -> None:
    stream = await openai_client.chat.completions.create(model=model, messages=HI, stream=True)
    got = []
    with pytest.raises(openai.APIError) as raised:
        async for chunk in stream:
            got.extend(c.delta.content for c in chunk.choices if c.delta.content)
    assert got == ["partial"]
    assert raised.value.code == "stream_interrupted"


async def test_a_restart_on_another_target_ends_the_stream_with_an_error(
    openai_client: openai.AsyncOpenAI,
) -> None:
    # The text already sent cannot be taken back: the new target's whole reply after it
    # would read as one corrupted answer, so the stream ends with an error instead.
    stream = await openai_client.chat.completions.create(
        model="fake/restart", messages=HI, stream=True
    )
    got = []
    with pytest.raises(openai.APIError) as raised:
        async for chunk in stream:
            got.extend(c.delta.content for c in chunk.choices if c.delta.content)
    assert got == ["half a rep"]
    assert raised.value.code == "stream_interrupted"
    assert "mid_stream_policy continue" in raised.value.message


async def test_a_continued_stream_reads_as_one_reply(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(
        model="fake/continue", messages=HI, stream=True
    )
    got = [c.delta.content async for chunk in stream for c in chunk.choices if c.delta.content]
    assert "".join(got) == "half a reply, continued."


async def test_stream_wire_format(http: httpx.AsyncClient) -> None:
    body = {
        "model": "fake/length",
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    r = await http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    blocks = r.text.split("\n\n")
    assert blocks[-2:] == ["data: [DONE]", ""]
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks[:-1])
    chunks = [orjson.loads(b[6:]) for b in blocks[:-2]]
    assert chunks[0] == {
        "id": "chatcmpl-req-length",
        "object": "chat.completion.chunk",
        "created": chunks[0]["created"],
        "model": "fake/length",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
        "usage": None,
    }
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 20


async def test_a_cut_stream_never_ends_with_done(http: httpx.AsyncClient) -> None:
    body = {"model": "fake/cut", "messages": HI, "stream": True}
    r = await http.post("/v1/chat/completions", json=body)
    assert "[DONE]" not in r.text
    last = orjson.loads(r.text.strip().split("\n\n")[-1][6:])
    assert last == {
        "error": {
            "message": "the upstream connection dropped",
            "type": "api_error",
            "param": None,
            "code": "stream_interrupted",
        }
    }


async def test_models(openai_client: openai.AsyncOpenAI) -> None:
    models = [m async for m in openai_client.models.list()]
    assert "fake/text" in [m.id for m in models]
    assert {m.owned_by for m in models} == {"fake"}
    model = await openai_client.models.retrieve("fake/tools")
    assert (model.id, model.object, model.owned_by) == ("fake/tools", "model", "fake")
    with pytest.raises(openai.NotFoundError) as missing:
        await openai_client.models.retrieve("fake/absent")
    assert missing.value.code == "model_not_found"


async def test_timeout_header_through_the_sdk(
    openai_client: openai.AsyncOpenAI, fake_mesh: FakeMesh
) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        await openai_client.chat.completions.create(
            model="fake/slow-start", messages=HI, extra_headers={"x-llmesh-timeout": "0.2"}
        )
    assert raised.value.status_code == 504
    assert raised.value.code == "deadline_exceeded"
