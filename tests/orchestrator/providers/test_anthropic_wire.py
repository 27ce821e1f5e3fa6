"""The Anthropic Messages request side as pure functions: no network (the stream parser
and error classification are in test_anthropic_stream.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import (
    ChatRequest,
    FinishReason,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
    ServiceTier,
    ThinkingBlock,
    Tool,
    ToolCall,
    ToolChoiceMode,
)
from llmesh.services.core.events import (
    Finish,
    TextDelta,
    ToolCallDelta,
)
from llmesh.services.orchestrator.providers.anthropic_stream import (
    AnthropicStreamParser,
    from_message,
)
from llmesh.services.orchestrator.providers.anthropic_wire import (
    DEFAULT_MAX_TOKENS,
    STRUCTURED_TOOL,
    to_provider_request,
)

# --- requests ---------------------------------------------------------------------------


def test_request_body_maps_every_field() -> None:
    req = ChatRequest(
        messages=(
            Message(Role.SYSTEM, "be brief"),
            Message(Role.USER, "weather in Oslo?"),
            Message(Role.SYSTEM, "use metric units"),
        ),
        tools=(Tool("get_weather", "the weather", {"type": "object", "properties": {}}),),
        tool_choice=ToolChoiceMode.TOOL,
        tool_choice_name="get_weather",
        temperature=0.0,
        top_p=0.5,
        max_tokens=50,
        stop=("END", "STOP"),
        seed=7,
    )
    assert to_provider_request("claude-sonnet-4-5", req) == {
        "model": "claude-sonnet-4-5",
        "system": [
            {"type": "text", "text": "be brief"},
            {"type": "text", "text": "use metric units"},
        ],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "weather in Oslo?"}]}],
        "max_tokens": 50,
        "tools": [
            {
                "name": "get_weather",
                "description": "the weather",
                "input_schema": {"type": "object", "properties": {}},
            }
        ],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "temperature": 0.0,  # a zero that means zero is sent
        "top_p": 0.5,
        "stop_sequences": ["END", "STOP"],
    }  # no seed (Anthropic has none) and no stream (the transport adds it)


def test_minimal_request_gets_default_max_tokens_and_nothing_else() -> None:
    body = to_provider_request("m", ChatRequest((Message(Role.USER, "hi"),)))
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": DEFAULT_MAX_TOKENS,
    }
    assert DEFAULT_MAX_TOKENS == 4096


def test_thinking_is_enabled_with_anthropics_constraints() -> None:
    req = ChatRequest(
        (Message(Role.USER, "hi"),), temperature=0.0, top_p=0.5, thinking_budget_tokens=2000
    )
    body = to_provider_request("m", req)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert body["max_tokens"] == 2000 + DEFAULT_MAX_TOKENS  # must exceed the budget
    assert "temperature" not in body and "top_p" not in body  # refused with thinking
    explicit = to_provider_request("m", replace(req, max_tokens=3000))
    assert explicit["max_tokens"] == 3000
    with pytest.raises(LlmeshError) as info:
        to_provider_request("m", replace(req, max_tokens=2000))
    assert info.value.reason is Reason.INVALID_REQUEST


def test_thinking_blocks_go_back_first_and_byte_for_byte() -> None:
    blocks = (
        ThinkingBlock("Let me see.", "sig/+=="),
        ThinkingBlock(redacted_data="EmwKAhgB"),
        ThinkingBlock("unsigned reasoning of another provider"),
    )
    req = ChatRequest(
        (
            Message(Role.USER, "hi"),
            Message(Role.ASSISTANT, "Hello.", thinking=blocks),
            Message(Role.USER, "again"),
        )
    )
    body = to_provider_request("m", req)
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Let me see.", "signature": "sig/+=="},
        {"type": "redacted_thinking", "data": "EmwKAhgB"},
        {"type": "text", "text": "Hello."},
    ]


def test_tool_round_trip_becomes_tool_use_and_tool_result_blocks() -> None:
    req = ChatRequest(
        (
            Message(Role.USER, "weather in Oslo and Rome?"),
            Message(
                Role.ASSISTANT,
                "Let me check.",
                (
                    ToolCall("toolu_1", "get_weather", '{"city": "Oslo"}'),
                    ToolCall("toolu_2", "get_weather", '{"city": "Rome"}'),
                ),
            ),
            Message(Role.TOOL, "sunny", tool_call_id="toolu_1"),
            Message(Role.TOOL, "rain", tool_call_id="toolu_2"),
            Message(Role.USER, "and tomorrow?"),
        ),
    )
    assert to_provider_request("m", req)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather in Oslo and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {  # two tool messages and the next user turn merged into one user message
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "rain"},
                {"type": "text", "text": "and tomorrow?"},
            ],
        },
    ]


def test_consecutive_same_role_messages_are_merged() -> None:
    req = ChatRequest(
        (
            Message(Role.USER, "one"),
            Message(Role.USER, "two"),
            Message(Role.ASSISTANT, "three"),
            Message(Role.ASSISTANT, "", (ToolCall("t1", "f", ""),)),
            Message(Role.ASSISTANT, ""),  # empty: carries nothing
        ),
    )
    assert to_provider_request("m", req)["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "three"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            ],
        },
    ]


def test_tool_results_open_their_user_message() -> None:
    req = ChatRequest(
        (
            Message(Role.ASSISTANT, "", (ToolCall("t1", "f", "{}"),)),
            Message(Role.USER, "by the way"),
            Message(Role.TOOL, "42", tool_call_id="t1"),
        ),
    )
    content = to_provider_request("m", req)["messages"][1]["content"]
    assert [b["type"] for b in content] == ["tool_result", "text"]


@pytest.mark.parametrize(
    ("mode", "name", "expected"),
    [
        (ToolChoiceMode.AUTO, "", {"type": "auto"}),
        (ToolChoiceMode.REQUIRED, "", {"type": "any"}),
        (ToolChoiceMode.NONE, "", {"type": "none"}),
        (ToolChoiceMode.TOOL, "f", {"type": "tool", "name": "f"}),
        (ToolChoiceMode.UNSPECIFIED, "", None),
    ],
)
def test_tool_choice(mode: ToolChoiceMode, name: str, expected: dict[str, str] | None) -> None:
    req = ChatRequest(
        (Message(Role.USER, "x"),), tools=(Tool("f"),), tool_choice=mode, tool_choice_name=name
    )
    body = to_provider_request("m", req)
    assert body.get("tool_choice") == expected
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        (
            (Message(Role.ASSISTANT, "", (ToolCall("t1", "f", "{not json"),)),),
            "messages[0].tool_calls[0].arguments",
        ),
        (
            (Message(Role.ASSISTANT, "", (ToolCall("t1", "f", "[1, 2]"),)),),
            "messages[0].tool_calls[0].arguments",
        ),
        ((Message(Role.USER, "x"), Message(Role.TOOL, "r")), "messages[1].tool_call_id"),
    ],
)
def test_invalid_requests_are_refused_locally(messages: tuple[Message, ...], field: str) -> None:
    with pytest.raises(LlmeshError) as info:
        to_provider_request("m", ChatRequest(messages))
    assert info.value.reason is Reason.INVALID_REQUEST
    assert info.value.violations[0].field == field


def test_tool_choice_tool_needs_a_name() -> None:
    req = ChatRequest(
        (Message(Role.USER, "x"),), tools=(Tool("f"),), tool_choice=ToolChoiceMode.TOOL
    )
    with pytest.raises(LlmeshError) as info:
        to_provider_request("m", req)
    assert info.value.reason is Reason.INVALID_REQUEST


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_a_json_schema_becomes_a_forced_tool() -> None:
    fmt = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "count", SCHEMA)
    tool = Tool("lookup", "", {"type": "object"})
    body = to_provider_request(
        "m", ChatRequest((Message(Role.USER, "hi"),), tools=(tool,), response_format=fmt)
    )
    assert [t["name"] for t in body["tools"]] == ["lookup", STRUCTURED_TOOL]
    assert body["tools"][1]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": STRUCTURED_TOOL}
    plain = ResponseFormat(ResponseFormatType.JSON_OBJECT)
    body = to_provider_request("m", ChatRequest((Message(Role.USER, "hi"),), response_format=plain))
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    text = ResponseFormat(ResponseFormatType.TEXT)
    body = to_provider_request("m", ChatRequest((Message(Role.USER, "hi"),), response_format=text))
    assert "tools" not in body and "tool_choice" not in body


def test_the_forced_tool_input_comes_back_as_text_and_stop() -> None:
    parser = AnthropicStreamParser(STRUCTURED_TOOL)
    stream: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 5}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t", "name": STRUCTURED_TOOL, "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"n": '},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": "4}"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_stop"},
    ]
    events = [e for event in stream for e in parser.feed(event)]
    assert not [e for e in events if isinstance(e, ToolCallDelta)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == '{"n": 4}'
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason is FinishReason.STOP
    whole = from_message(
        {
            "content": [
                {"type": "tool_use", "id": "t", "name": STRUCTURED_TOOL, "input": {"n": 4}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 5, "output_tokens": 3},
        },
        structured_tool=STRUCTURED_TOOL,
    )
    assert [e for e in whole if isinstance(e, TextDelta)] == [TextDelta('{"n": 4}')]
    assert isinstance(whole[-1], Finish) and whole[-1].reason is FinishReason.STOP


def test_no_parallel_tool_calls_becomes_disable_parallel_tool_use() -> None:
    hi = (Message(Role.USER, "hi"),)
    tools = (Tool("get_weather"),)
    body = to_provider_request("m", ChatRequest(hi, tools=tools, parallel_tool_calls=False))
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    forced = ChatRequest(
        hi,
        tools=tools,
        tool_choice=ToolChoiceMode.TOOL,
        tool_choice_name="get_weather",
        parallel_tool_calls=False,
    )
    assert to_provider_request("m", forced)["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
    allowed = ChatRequest(hi, tools=tools, parallel_tool_calls=True)
    assert "tool_choice" not in to_provider_request("m", allowed)


@pytest.mark.parametrize(
    ("tier", "sent"),
    [("auto", "auto"), ("default", "standard_only"), ("", None)],
)
def test_the_service_tier_becomes_anthropics_own(tier: str, sent: str | None) -> None:
    request = ChatRequest((Message(Role.USER, "hi"),), service_tier=ServiceTier(tier))
    assert to_provider_request("m", request).get("service_tier") == sent
