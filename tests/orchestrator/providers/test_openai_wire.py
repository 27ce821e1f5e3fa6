"""The OpenAI wire format as pure functions: no network."""

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import (
    ChatRequest,
    FinishReason,
    Message,
    ReasoningEffort,
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
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.providers.openai_wire import (
    OpenAIStreamParser,
    classify_error_body,
    from_completion,
    to_provider_request,
)


def test_request_body() -> None:
    req = ChatRequest(
        messages=(
            Message(Role.SYSTEM, "be brief"),
            Message(Role.USER, "weather?"),
            Message(Role.ASSISTANT, "", (ToolCall("c1", "get_weather", '{"city":"Oslo"}'),)),
            Message(Role.TOOL, "sunny", tool_call_id="c1"),
        ),
        tools=(Tool("get_weather", "weather", {"type": "object"}),),
        tool_choice=ToolChoiceMode.TOOL,
        tool_choice_name="get_weather",
        temperature=0.0,
        max_tokens=50,
        stop=("END",),
    )
    body = to_provider_request("gpt-4o-mini", req, max_tokens_field="max_completion_tokens")
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
    }
    assert body["messages"][3] == {"role": "tool", "content": "sunny", "tool_call_id": "c1"}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["temperature"] == 0.0  # a zero that means zero is sent
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body
    assert body["stop"] == ["END"]
    assert "top_p" not in body and "seed" not in body


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": None}


def test_stream_parser_joins_nothing_but_reports_everything() -> None:
    p = OpenAIStreamParser()
    events = []
    events += p.feed(_chunk({"role": "assistant", "content": ""}))
    events += p.feed(_chunk({"content": "Hel"}))
    events += p.feed(
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            }
        )
    )
    events += p.feed(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}))
    events += p.feed(_chunk({}, "tool_calls"))
    events += p.feed(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 1},
            },
        }
    )
    usage = Usage(input_tokens=6, output_tokens=3, cache_read_tokens=4, reasoning_tokens=1)
    assert events == [
        TextDelta("Hel"),
        ToolCallDelta(0, "c1", "f", ""),
        ToolCallDelta(0, "", "", '{"a"'),
        UsageUpdate(usage),
    ]
    assert p.end() == Finish(FinishReason.TOOL_CALLS, "tool_calls", usage)


def test_stream_without_finish_reason_is_interrupted() -> None:
    p = OpenAIStreamParser()
    p.feed(_chunk({"content": "partial"}))
    with pytest.raises(LlmeshError) as info:
        p.end()
    assert info.value.reason is Reason.STREAM_INTERRUPTED


def test_finish_without_usage_leaves_usage_to_estimate() -> None:
    p = OpenAIStreamParser()
    p.feed(_chunk({"content": "x"}, "stop"))
    assert p.end() == Finish(FinishReason.STOP, "stop", None)


def test_error_object_inside_stream_raises() -> None:
    with pytest.raises(LlmeshError) as info:
        OpenAIStreamParser().feed(
            {"error": {"message": "The server is overloaded", "type": "server_error"}}
        )
    assert info.value.reason is Reason.OVERLOADED


def test_from_completion() -> None:
    events = from_completion(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1},
        }
    )
    assert events[0] == TextDelta("hi")
    assert events[-1] == Finish(FinishReason.STOP, "stop", Usage(2, 1))


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (
            429,
            {"type": "requests", "code": "rate_limit_exceeded", "message": "slow"},
            Reason.RATE_LIMITED,
        ),
        (
            429,
            {"type": "insufficient_quota", "code": "insufficient_quota", "message": "pay"},
            Reason.QUOTA_EXHAUSTED,
        ),
        (
            400,
            {"type": "invalid_request_error", "code": "context_length_exceeded", "message": "long"},
            Reason.CONTEXT_TOO_LONG,
        ),
        (400, {"type": "invalid_request_error", "message": "bad"}, Reason.UPSTREAM_INVALID_REQUEST),
        (
            401,
            {"type": "invalid_request_error", "code": "invalid_api_key", "message": "key"},
            Reason.UPSTREAM_AUTH_FAILED,
        ),
        (
            404,
            {"type": "invalid_request_error", "code": "model_not_found", "message": "no"},
            Reason.MODEL_NOT_FOUND,
        ),
        (500, {"type": "server_error", "message": "boom"}, Reason.UPSTREAM_UNAVAILABLE),
        (
            503,
            {"type": "server_error", "message": "The engine is currently overloaded"},
            Reason.OVERLOADED,
        ),
    ],
)
def test_classification_by_type_and_code(status: int, body: dict, reason: Reason) -> None:
    err = classify_error_body(body, status=status, headers={"retry-after": "2"})
    assert err.reason is reason
    if reason is Reason.RATE_LIMITED:
        assert err.retry_after == 2.0


def test_retry_after_ms_wins() -> None:
    err = classify_error_body(
        {"message": "x"}, status=429, headers={"retry-after-ms": "250", "retry-after": "9"}
    )
    assert err.retry_after == 0.25


def test_reasoning_effort_is_sent_and_thinking_is_not() -> None:
    thought = (ThinkingBlock("mulling"),)
    req = ChatRequest(
        (Message(Role.USER, "hi"), Message(Role.ASSISTANT, "yo", thinking=thought)),
        reasoning_effort=ReasoningEffort.HIGH,
    )
    body = to_provider_request("o4-mini", req)
    assert body["reasoning_effort"] == "high"
    assert body["messages"][1] == {"role": "assistant", "content": "yo"}
    assert "reasoning_effort" not in to_provider_request("m", ChatRequest(req.messages))


def test_reasoning_content_streams_apart_from_content() -> None:
    parser = OpenAIStreamParser()
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Hm, "}}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": "easy."}}]},
        {"choices": [{"index": 0, "delta": {"content": "4"}, "finish_reason": "stop"}]},
    ]
    events = [e for c in chunks for e in parser.feed(c)]
    assert events == [ReasoningDelta("Hm, "), ReasoningDelta("easy."), TextDelta("4")]
    whole = from_completion(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"content": "4", "reasoning_content": "Hm, easy."},
                    "finish_reason": "stop",
                }
            ]
        }
    )
    assert whole[:2] == [ReasoningDelta("Hm, easy."), TextDelta("4")]


def test_response_format_is_passed_through_natively() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    fmt = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "count", schema, strict=True)
    body = to_provider_request("m", ChatRequest((Message(Role.USER, "hi"),), response_format=fmt))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "count", "schema": schema, "strict": True},
    }
    fmt = ResponseFormat(ResponseFormatType.JSON_OBJECT)
    body = to_provider_request("m", ChatRequest((Message(Role.USER, "hi"),), response_format=fmt))
    assert body["response_format"] == {"type": "json_object"}
    assert "response_format" not in to_provider_request(
        "m", ChatRequest((Message(Role.USER, "x"),))
    )


def test_parallel_tool_calls_is_sent_with_tools_only() -> None:
    hi = (Message(Role.USER, "hi"),)
    req = ChatRequest(hi, tools=(Tool("get_weather"),), parallel_tool_calls=False)
    assert to_provider_request("m", req)["parallel_tool_calls"] is False
    assert "parallel_tool_calls" not in to_provider_request("m", ChatRequest(hi, tools=req.tools))
    plain = ChatRequest(hi, parallel_tool_calls=False)
    assert "parallel_tool_calls" not in to_provider_request("m", plain)


def test_the_finish_names_the_reply_id_and_model_of_the_first_chunk() -> None:
    parser = OpenAIStreamParser()
    head = {"id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18"}
    parser.feed({**head, "choices": [{"index": 0, "delta": {"content": "hi"}}]})
    parser.feed({"id": "other", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    finish = parser.end()
    assert (finish.response_id, finish.response_model) == ("chatcmpl-1", "gpt-4o-mini-2024-07-18")


def test_penalties_bias_and_tier_are_sent_as_set() -> None:
    plain = ChatRequest((Message(Role.USER, "hi"),))
    body = to_provider_request("m", plain)
    assert not {"presence_penalty", "frequency_penalty", "logit_bias", "service_tier"} & set(body)
    asked = ChatRequest(
        (Message(Role.USER, "hi"),),
        presence_penalty=-0.5,
        frequency_penalty=1.0,
        logit_bias={"50256": -100},
        service_tier=ServiceTier.PRIORITY,
    )
    body = to_provider_request("m", asked)
    assert (body["presence_penalty"], body["frequency_penalty"]) == (-0.5, 1.0)
    assert (body["logit_bias"], body["service_tier"]) == ({"50256": -100}, "priority")
