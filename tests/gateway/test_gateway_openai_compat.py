"""The pure OpenAI <-> llmesh translation, both directions (no network)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmesh.gateway.openai_compat import parse_completion_request
from llmesh.gateway.openai_responses import (
    DONE,
    ChunkEncoder,
    completion,
    finish_reason,
    usage_dict,
)
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.v1 import chat_pb2, orchestrator_pb2

HI = [{"role": "user", "content": "hi"}]


def IMAGE(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def parse(**body: Any) -> chat_pb2.ChatInput:
    return parse_completion_request({"model": "m/x", "messages": HI, **body}).input


def test_minimal_request() -> None:
    req = parse_completion_request({"model": "openai/gpt-4o", "messages": HI})
    assert (req.model, req.stream, req.include_usage) == ("openai/gpt-4o", False, False)
    assert req.input.messages[0] == chat_pb2.Message(role=chat_pb2.ROLE_USER, content="hi")
    assert not req.input.HasField("temperature")
    assert not req.input.HasField("max_tokens")


def test_content_parts_are_joined_by_a_newline() -> None:
    content = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    chat = parse(messages=[{"role": "system", "content": content}])
    assert chat.messages[0] == chat_pb2.Message(role=chat_pb2.ROLE_SYSTEM, content="a\nb")


def test_max_completion_tokens_wins_and_options() -> None:
    chat = parse(max_tokens=5, max_completion_tokens=9, stop=["a", "b"], seed=-3, n=1)
    assert (chat.max_tokens, list(chat.stop), chat.seed) == (9, ["a", "b"], -3)
    assert parse(max_tokens=5.0).max_tokens == 5
    assert parse(temperature=0).HasField("temperature")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", chat_pb2.ToolChoice(mode=chat_pb2.TOOL_CHOICE_MODE_AUTO)),
        ("none", chat_pb2.ToolChoice(mode=chat_pb2.TOOL_CHOICE_MODE_NONE)),
        ("required", chat_pb2.ToolChoice(mode=chat_pb2.TOOL_CHOICE_MODE_REQUIRED)),
        (
            {"type": "function", "function": {"name": "f"}},
            chat_pb2.ToolChoice(mode=chat_pb2.TOOL_CHOICE_MODE_TOOL, name="f"),
        ),
    ],
)
def test_tool_choice(choice: Any, expected: chat_pb2.ToolChoice) -> None:
    assert parse(tool_choice=choice).tool_choice == expected


def test_user_and_safety_identifier_become_metadata() -> None:
    chat = parse(user="u", safety_identifier="s", fallbacks=["m/y"])
    assert dict(chat.metadata) == {"user": "u", "safety_identifier": "s"}
    assert list(chat.fallbacks) == ["m/y"]


def test_llmesh_extensions_are_mapped_from_protobuf_json() -> None:
    chat = parse(
        max_cost_usd=0.5,
        cache={"no_response_cache": True, "prompt_cache": "PROMPT_CACHE_MODE_OFF"},
        first_token_timeout="2s",
        stall_timeout="0.5s",
        hedge={"enabled": True, "ttft_percentile": 95},
        mid_stream_policy="MID_STREAM_POLICY_RESTART",
    )
    assert chat.max_cost_usd == 0.5
    assert chat.cache == chat_pb2.CacheOptions(
        no_response_cache=True, prompt_cache=chat_pb2.PROMPT_CACHE_MODE_OFF
    )
    assert chat.first_token_timeout.ToTimedelta().total_seconds() == 2
    assert chat.stall_timeout.ToMilliseconds() == 500
    assert chat.hedge == chat_pb2.Hedge(enabled=True, ttft_percentile=95)
    assert chat.mid_stream_policy == chat_pb2.MID_STREAM_POLICY_RESTART
    assert chat.model == "m/x"


def test_stream_options() -> None:
    body = {"model": "m", "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    req = parse_completion_request(body)
    assert (req.stream, req.include_usage) == (True, True)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "", "messages": HI}, "model"),
        ({"model": 3, "messages": HI}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": {"role": "user"}}, "messages"),
        ({"model": "m", "messages": ["hi"]}, "messages[0]"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "video_url"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0].input_audio",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [IMAGE("data:image/png,x")]}]},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [IMAGE("ftp://x/y.png")]}]},
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}
                ],
            },
            "messages[0].content[0].file.file_id",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
        ),
        (
            {"model": "m", "messages": [{"role": "tool", "content": "x"}]},
            "messages[0].tool_call_id",
        ),
        (
            {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c"}]}]},
            "messages[0].tool_calls[0].function",
        ),
        ({"model": "m", "messages": HI, "tools": {}}, "tools"),
        ({"model": "m", "messages": HI, "tools": [{"type": "web_search"}]}, "tools[0]"),
        (
            {"model": "m", "messages": HI, "tools": [{"type": "function", "function": {}}]},
            "tools[0].function.name",
        ),
        ({"model": "m", "messages": HI, "tool_choice": "always"}, "tool_choice"),
        ({"model": "m", "messages": HI, "temperature": "hot"}, "temperature"),
        ({"model": "m", "messages": HI, "temperature": True}, "temperature"),
        ({"model": "m", "messages": HI, "max_tokens": 1.5}, "max_tokens"),
        ({"model": "m", "messages": HI, "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": HI, "max_tokens": 2**31}, "max_tokens"),
        ({"model": "m", "messages": HI, "seed": 2**64}, "seed"),
        ({"model": "m", "messages": HI, "stop": 5}, "stop"),
        ({"model": "m", "messages": HI, "stop": ["a", 1]}, "stop[1]"),
        ({"model": "m", "messages": HI, "n": 0}, "n"),
        ({"model": "m", "messages": HI, "n": 129}, "n"),
        ({"model": "m", "messages": HI, "n": "2"}, "n"),
        ({"model": "m", "messages": HI, "metadata": {"k": 1}}, "metadata.k"),
        ({"model": "m", "messages": HI, "user": 7}, "user"),
        ({"model": "m", "messages": HI, "safety_identifier": 7}, "safety_identifier"),
        ({"model": "m", "messages": HI, "prompt_cache_key": 7}, "prompt_cache_key"),
        (
            {
                "model": "m",
                "messages": HI,
                "tools": [{"type": "function", "function": {"name": "f", "strict": True}}],
            },
            "tools[0].function.strict",
        ),
        ({"model": "m", "messages": HI, "fallbacks": "m2"}, "fallbacks"),
        ({"model": "m", "messages": HI, "hedge": {"enabled": "yes"}}, "hedge"),
        ({"model": "m", "messages": HI, "max_cost_usd": "cheap"}, "max_cost_usd"),
        ({"model": "m", "messages": HI, "stall_timeout": 5}, "stall_timeout"),
        ({"model": "m", "messages": HI, "mid_stream_policy": "SOMETIMES"}, "mid_stream_policy"),
        ({"model": "m", "messages": HI, "stream": "yes"}, "stream"),
        ({"model": "m", "messages": HI, "stream_options": True}, "stream_options"),
    ],
)
def test_invalid_fields_are_named(body: dict[str, Any], param: str) -> None:
    with pytest.raises(LlmeshError) as raised:
        parse_completion_request(body)
    assert raised.value.reason is Reason.INVALID_REQUEST
    assert raised.value.violations[0].field == param


def test_usage_counts_cache_tokens_as_prompt_tokens() -> None:
    usage = chat_pb2.Usage(
        input_tokens=100, output_tokens=7, cache_read_tokens=50, cache_write_tokens=25
    )
    assert usage_dict(usage) == {
        "prompt_tokens": 175,
        "completion_tokens": 7,
        "total_tokens": 182,
        "prompt_tokens_details": {"cached_tokens": 50},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_finish_reasons() -> None:
    assert [finish_reason(r) for r in range(5)] == [
        "stop",
        "stop",
        "length",
        "tool_calls",
        "content_filter",
    ]


def test_completion_with_text_and_tool_calls() -> None:
    reply = orchestrator_pb2.ChatResponse(
        request_id="r1",
        message=chat_pb2.Message(
            role=chat_pb2.ROLE_ASSISTANT,
            content="Let me check.",
            tool_calls=[chat_pb2.ToolCall(id="c", name="f", arguments="{}")],
        ),
        finish_reason=chat_pb2.FINISH_REASON_TOOL_CALLS,
    )
    body = completion(reply, "alias", 123)
    assert (body["id"], body["model"], body["created"]) == ("chatcmpl-r1", "alias", 123)
    message = body["choices"][0]["message"]
    assert message["content"] == "Let me check."
    assert message["tool_calls"] == [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]


def _events(*events: orchestrator_pb2.StreamChatResponse) -> list[Any]:
    encoder = ChunkEncoder("m", 7, include_usage=False, fallback_id="fb")
    raw = b"".join(encoder.encode(e) for e in events)
    assert raw.endswith(DONE) == encoder.finished
    return [orjson.loads(b[6:]) for b in raw.split(b"\n\n") if b and b != DONE.strip()]


def test_encoder_without_start_event_uses_the_fallback_id() -> None:
    chunks = _events(
        orchestrator_pb2.StreamChatResponse(text_delta=orchestrator_pb2.TextDelta(text="x")),
        orchestrator_pb2.StreamChatResponse(
            finish=orchestrator_pb2.FinishEvent(reason=chat_pb2.FINISH_REASON_CONTENT_FILTER)
        ),
    )
    assert [c["id"] for c in chunks] == ["chatcmpl-fb"] * 3
    assert "usage" not in chunks[0]
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "x"},
        {},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"


def test_encoder_ignores_events_after_finish() -> None:
    encoder = ChunkEncoder("m", 7, include_usage=True, fallback_id="fb")
    encoder.encode(orchestrator_pb2.StreamChatResponse(finish=orchestrator_pb2.FinishEvent()))
    event = orchestrator_pb2.StreamChatResponse(text_delta=orchestrator_pb2.TextDelta(text="x"))
    assert encoder.encode(event) == b""


def test_encoder_uses_the_last_usage_event_when_finish_has_none() -> None:
    encoder = ChunkEncoder("m", 7, include_usage=True, fallback_id="fb")
    encoder.encode(
        orchestrator_pb2.StreamChatResponse(usage=chat_pb2.Usage(input_tokens=4, output_tokens=2))
    )
    raw = encoder.encode(
        orchestrator_pb2.StreamChatResponse(finish=orchestrator_pb2.FinishEvent(reason=1))
    )
    usage_chunk = orjson.loads(raw.split(b"\n\n")[1][6:])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["total_tokens"] == 6


PDF_TYPE = "application/pdf"


def test_media_parts_map_to_message_parts_in_order() -> None:
    content = [
        {"type": "text", "text": "see"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAEC", "detail": "low"}},
        IMAGE("https://example.com/a.png"),
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "r"},
        },
        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
    ]
    message = parse(model="m", messages=[{"role": "user", "content": content}]).messages[0]
    assert message.content == ""
    assert list(message.parts) == [
        chat_pb2.ContentPart(text="see"),
        chat_pb2.ContentPart(
            image=chat_pb2.ImagePart(data=b"\x00\x01\x02", media_type="image/png", detail="low")
        ),
        chat_pb2.ContentPart(image=chat_pb2.ImagePart(url="https://example.com/a.png")),
        chat_pb2.ContentPart(
            document=chat_pb2.DocumentPart(data=b"%PD", media_type="application/pdf", title="r")
        ),
        chat_pb2.ContentPart(input_audio=chat_pb2.AudioPart(data=b"RIF", format="wav")),
    ]


def test_text_only_arrays_still_join_into_content() -> None:
    content = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    message = parse(model="m", messages=[{"role": "user", "content": content}]).messages[0]
    assert message.content == "a\nb" and not message.parts
