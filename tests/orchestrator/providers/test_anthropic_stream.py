"""The Anthropic Messages stream parser and error classification as pure functions: no
network (the request side is in test_anthropic_wire.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import (
    FinishReason,
)
from llmesh.services.core.events import (
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.providers.anthropic_stream import (
    AnthropicStreamParser,
    classify_error_body,
    classify_error_type,
    from_message,
)

# --- the stream parser ------------------------------------------------------------------

# A real-shaped stream: text, then a tool call, with pings, an event type this code has never
# heard of, a thinking block and a cumulative message_delta.
RECORDED: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 472,
                "cache_creation_input_tokens": 1200,
                "cache_read_input_tokens": 2048,
                "output_tokens": 2,
            },
        },
    },
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": ""},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "Hmm"},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "EqQ"},
    },
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Okay"}},
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "text_delta", "text": ", checking."},
    },
    {"type": "content_block_stop", "index": 1},
    {"type": "brand_new_event", "payload": {"anything": True}},
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": ""},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": "Os'},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": 'lo"}'},
    },
    {"type": "content_block_stop", "index": 2},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 40},
    },
    {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 89}},
    {"type": "message_stop"},
]


def _feed_all(events: list[dict[str, Any]]) -> tuple[AnthropicStreamParser, list[Any]]:
    parser = AnthropicStreamParser()
    out: list[Any] = []
    for event in events:
        out += parser.feed(event)
    return parser, out


def test_recorded_stream() -> None:
    parser, events = _feed_all(RECORDED)
    start = Usage(
        input_tokens=472, output_tokens=2, cache_read_tokens=2048, cache_write_tokens=1200
    )
    final = Usage(
        input_tokens=472, output_tokens=89, cache_read_tokens=2048, cache_write_tokens=1200
    )
    assert events == [
        UsageUpdate(start),
        ReasoningDelta("Hmm", 0),  # thinking streams apart from the text, signature exact
        ReasoningDelta("", 0, signature="EqQ"),
        TextDelta("Okay"),
        TextDelta(", checking."),
        ToolCallDelta(0, "toolu_01", "get_weather", ""),
        ToolCallDelta(0, arguments_delta='{"city": "Os'),
        ToolCallDelta(0, arguments_delta='lo"}'),
        UsageUpdate(Usage(472, 40, 2048, 1200)),
        UsageUpdate(final),  # assigned, not added: 89, not 2 + 40 + 89
        Finish(FinishReason.TOOL_CALLS, "tool_use", final, "msg_01", "claude-sonnet-4-5"),
    ]
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.response_id == "msg_01"  # not compared by ==
    parser.ensure_complete()


def test_tool_indexes_count_only_tool_blocks() -> None:
    events: list[dict[str, Any]] = [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "A"}},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "a", "name": "f", "input": {}},
        },
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {
                "type": "server_tool_use",
                "id": "s",
                "name": "web_search",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"q": 1}'},
        },
        {
            "type": "content_block_start",
            "index": 3,
            "content_block": {"type": "tool_use", "id": "b", "name": "g", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 3,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
    ]
    _, out = _feed_all(events)
    assert out == [
        TextDelta("A"),
        ToolCallDelta(0, "a", "f"),
        ToolCallDelta(1, "b", "g"),
        ToolCallDelta(1, arguments_delta="{}"),
        ToolCallDelta(0, arguments_delta="{}"),
    ]


def test_message_delta_may_carry_input_and_cache_counts() -> None:
    _, out = _feed_all(
        [
            {
                "type": "message_start",
                "message": {"usage": {"input_tokens": 10, "output_tokens": 1}},
            },
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {
                    "input_tokens": 12,
                    "cache_read_input_tokens": 3,
                    "cache_creation_input_tokens": None,
                    "output_tokens": 5,
                },
            },
            {"type": "message_stop"},
        ]
    )
    assert out[-1] == Finish(FinishReason.STOP, "end_turn", Usage(12, 5, cache_read_tokens=3))


@pytest.mark.parametrize(
    ("stop_reason", "reason"),
    [
        ("end_turn", FinishReason.STOP),
        ("stop_sequence", FinishReason.STOP),
        ("pause_turn", FinishReason.STOP),
        ("max_tokens", FinishReason.LENGTH),
        ("tool_use", FinishReason.TOOL_CALLS),
        ("refusal", FinishReason.CONTENT_FILTER),
        ("something_new", FinishReason.UNSPECIFIED),
    ],
)
def test_stop_reasons(stop_reason: str, reason: FinishReason) -> None:
    _, out = _feed_all(
        [
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason},
                "usage": {"output_tokens": 1},
            },
            {"type": "message_stop"},
        ]
    )
    assert out[-1] == Finish(reason, stop_reason, Usage(output_tokens=1))


def test_usage_updates_are_snapshots() -> None:
    _, out = _feed_all(
        [
            {
                "type": "message_start",
                "message": {"usage": {"input_tokens": 5, "output_tokens": 1}},
            },
            {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 9}},
        ]
    )
    assert out[0].usage.output_tokens == 1 and out[1].usage.output_tokens == 9


def test_stream_without_message_stop_is_interrupted() -> None:
    parser, events = _feed_all(RECORDED[:-1])
    assert not any(isinstance(e, Finish) for e in events)
    with pytest.raises(LlmeshError) as info:
        parser.ensure_complete()
    assert info.value.reason is Reason.STREAM_INTERRUPTED


@pytest.mark.parametrize(
    ("error_type", "reason"),
    [
        ("overloaded_error", Reason.OVERLOADED),
        ("api_error", Reason.UPSTREAM_UNAVAILABLE),
        ("rate_limit_error", Reason.RATE_LIMITED),
    ],
)
def test_error_event_mid_stream_raises_by_type(error_type: str, reason: Reason) -> None:
    parser = AnthropicStreamParser()
    parser.feed(RECORDED[0])
    parser.feed(RECORDED[7])
    with pytest.raises(LlmeshError) as info:
        parser.feed({"type": "error", "error": {"type": error_type, "message": "Overloaded"}})
    assert info.value.reason is reason
    assert info.value.metadata["upstream_error_type"] == error_type


def test_non_streamed_message() -> None:
    events = from_message(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "...", "signature": "x"},
                {"type": "redacted_thinking", "data": "EmwKAhgB"},
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
            ],
            "stop_reason": "tool_use",
            "usage": {
                "input_tokens": 20,
                "output_tokens": 30,
                "cache_read_input_tokens": 4,
                "cache_creation_input_tokens": 0,
            },
        }
    )
    usage = Usage(20, 30, cache_read_tokens=4)
    assert events == [
        UsageUpdate(usage),
        ReasoningDelta("...", 0),
        ReasoningDelta("", 0, signature="x"),
        ReasoningDelta("", 1, redacted_data="EmwKAhgB"),
        TextDelta("Checking."),
        ToolCallDelta(0, "toolu_1", "get_weather"),
        ToolCallDelta(0, arguments_delta=json.dumps({"city": "Oslo"})),
        Finish(FinishReason.TOOL_CALLS, "tool_use", usage),
    ]


def test_non_streamed_error_body_raises() -> None:
    with pytest.raises(LlmeshError) as info:
        from_message({"type": "error", "error": {"type": "not_found_error", "message": "model: x"}})
    assert info.value.reason is Reason.MODEL_NOT_FOUND


# --- error classification ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_type", "message", "status", "reason"),
    [
        (
            "invalid_request_error",
            "max_tokens: must be positive",
            400,
            Reason.UPSTREAM_INVALID_REQUEST,
        ),
        (
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            400,
            Reason.CONTEXT_TOO_LONG,
        ),
        (
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API.",
            400,
            Reason.QUOTA_EXHAUSTED,
        ),
        ("authentication_error", "invalid x-api-key", 401, Reason.UPSTREAM_AUTH_FAILED),
        ("permission_error", "no access", 403, Reason.UPSTREAM_AUTH_FAILED),
        ("billing_error", "billing", 402, Reason.QUOTA_EXHAUSTED),
        ("not_found_error", "model: claude-nope", 404, Reason.MODEL_NOT_FOUND),
        ("request_too_large", "Request exceeds the maximum size", 413, Reason.CONTEXT_TOO_LONG),
        (
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
            429,
            Reason.RATE_LIMITED,
        ),
        ("api_error", "Internal server error", 500, Reason.UPSTREAM_UNAVAILABLE),
        ("overloaded_error", "Overloaded", 529, Reason.OVERLOADED),
        ("timeout_error", "timed out", 504, Reason.UPSTREAM_TIMEOUT),
        # the type wins over the status: an overloaded_error inside a 200 stream
        ("overloaded_error", "Overloaded", None, Reason.OVERLOADED),
        ("overloaded_error", "Overloaded", 500, Reason.OVERLOADED),
        # unknown types fall back on the status
        ("weird_error", "?", 503, Reason.UPSTREAM_UNAVAILABLE),
        ("weird_error", "?", 429, Reason.RATE_LIMITED),
        ("weird_error", "?", 529, Reason.OVERLOADED),
        ("weird_error", "?", 409, Reason.UPSTREAM_INVALID_REQUEST),
        ("", "?", 401, Reason.UPSTREAM_AUTH_FAILED),
        ("weird_error", "?", None, Reason.UPSTREAM_UNAVAILABLE),
    ],
)
def test_classification_table(
    error_type: str, message: str, status: int | None, reason: Reason
) -> None:
    assert classify_error_type(error_type, message, status, None).reason is reason


def test_retry_after_from_headers() -> None:
    err = classify_error_type("rate_limit_error", "slow down", 429, {"retry-after": "7"})
    assert err.retry_after == 7.0
    err = classify_error_type("overloaded_error", "busy", 529, {"retry-after-ms": "250"})
    assert err.retry_after == 0.25
    err = classify_error_type("invalid_request_error", "bad", 400, {"retry-after": "7"})
    assert err.retry_after is None  # not retryable: no hint


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            529,
            Reason.OVERLOADED,
        ),
        ({"type": "overloaded_error", "message": "Overloaded"}, None, Reason.OVERLOADED),
        ("<html>Bad Gateway</html>", 502, Reason.UPSTREAM_UNAVAILABLE),
        (None, 404, Reason.UPSTREAM_INVALID_REQUEST),
    ],
)
def test_error_bodies(body: object, status: int | None, reason: Reason) -> None:
    assert classify_error_body(body, status=status, headers=None).reason is reason


@pytest.mark.parametrize(
    "event",
    [
        {"type": "content_block_delta", "index": 0, "delta": "oops"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}},
        {"type": "message_start", "message": ["not", "an", "object"]},
    ],
)
def test_malformed_events_raise_malformed_response(event: dict[str, Any]) -> None:
    with pytest.raises(LlmeshError) as info:
        AnthropicStreamParser().feed(event)
    assert info.value.reason is Reason.MALFORMED_RESPONSE
