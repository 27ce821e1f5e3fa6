"""Anthropic Messages bodies -> `ChatInput` (pure): what is translated, what is refused."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from llmesh.gateway.anthropic.request import parse_count_request, parse_messages_request
from llmesh.services.common.errors import LlmeshError
from llmesh.v1 import chat_pb2

PNG = base64.b64encode(b"\x89PNG....").decode()


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "anthropic/claude-sonnet-4-6",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def _field(body: dict[str, Any]) -> str:
    with pytest.raises(LlmeshError) as info:
        parse_messages_request(body)
    return info.value.violations[0].field


def test_a_full_request_is_translated() -> None:
    parsed = parse_messages_request(
        _body(
            system=[
                {"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "more"},
            ],
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hm", "signature": "sig=="},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {"type": "text", "text": "calling"},
                        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "is_error": True,
                            "content": [{"type": "text", "text": "boom"}],
                            "cache_control": {"type": "ephemeral", "ttl": "1h"},
                        },
                        {"type": "text", "text": "and?"},
                    ],
                },
            ],
            tools=[{"name": "f", "input_schema": {"type": "object"}}],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            temperature=0.5,
            stop_sequences=["END"],
            metadata={"user_id": "u-1"},
            thinking={"type": "enabled", "budget_tokens": 2048},
            stream=True,
        )
    )
    chat = parsed.input
    assert parsed.stream and parsed.model == "anthropic/claude-sonnet-4-6"
    roles = [m.role for m in chat.messages]
    assert roles == [
        chat_pb2.ROLE_SYSTEM,
        chat_pb2.ROLE_USER,
        chat_pb2.ROLE_ASSISTANT,
        chat_pb2.ROLE_TOOL,
        chat_pb2.ROLE_USER,
    ]
    system, user, assistant, tool, last = chat.messages
    assert [p.text for p in system.parts] == ["rules", "more"]
    assert system.parts[0].HasField("cache_control") and not system.parts[1].HasField(
        "cache_control"
    )
    assert [p.WhichOneof("kind") for p in user.parts] == ["text", "image", "document"]
    assert user.parts[1].image.data == base64.b64decode(PNG)
    assert [(b.thinking, b.signature, b.redacted_data) for b in assistant.thinking] == [
        ("hm", "sig==", ""),
        ("", "", "opaque"),
    ]
    assert assistant.content == "calling"
    assert assistant.tool_calls[0].arguments == '{"a":1}'
    assert tool.tool_call_id == "toolu_1" and tool.is_error and tool.content == "boom"
    assert tool.cache_control.ttl == "1h"
    assert last.content == "and?"
    assert chat.tool_choice.mode == chat_pb2.TOOL_CHOICE_MODE_REQUIRED
    assert chat.parallel_tool_calls is False
    assert chat.max_tokens == 100 and chat.temperature == 0.5 and list(chat.stop) == ["END"]
    assert chat.metadata["user"] == "u-1" and chat.thinking_budget_tokens == 2048
    # the caller placed breakpoints: llmesh adds none of its own
    assert chat.cache.prompt_cache == chat_pb2.PROMPT_CACHE_MODE_OFF


def test_without_breakpoints_automatic_caching_stays() -> None:
    chat = parse_messages_request(_body(system="be brief")).input
    assert chat.cache.prompt_cache == chat_pb2.PROMPT_CACHE_MODE_UNSPECIFIED
    assert chat.messages[0].content == "be brief" and chat.messages[1].content == "hi"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_body(top_k=5), "top_k"),
        (_body(service_tier="priority"), "service_tier"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (_body(messages=[{"role": "system", "content": "x"}]), "messages[0].role"),
        (
            _body(messages=[{"role": "user", "content": [{"type": "thinking", "thinking": ""}]}]),
            "messages[0].content[0].type",
        ),
        (
            _body(messages=[{"role": "user", "content": [{"type": "text", "text": "x", "x": 1}]}]),
            "messages[0].content[0].x",
        ),
        (
            _body(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "x", "cache_control": {"type": "forever"}}
                        ],
                    }
                ]
            ),
            "messages[0].content[0].cache_control",
        ),
        (_body(tools=[{"type": "web_search_20250305", "name": "w"}]), "tools[0].type"),
        (_body(tool_choice={"type": "sometimes"}), "tool_choice.type"),
        (_body(thinking={"type": "enabled", "budget_tokens": 10}), "thinking.budget_tokens"),
        (_body(metadata={"tenant": "a"}), "metadata.tenant"),
        (_body(temperature=1.5), "temperature"),
    ],
)
def test_what_cannot_be_translated_is_refused_by_name(body: dict[str, Any], field: str) -> None:
    assert _field(body) == field


def test_count_tokens_takes_no_sampling_fields() -> None:
    chat = parse_count_request({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert chat.messages[0].content == "x"
    with pytest.raises(LlmeshError) as info:
        parse_count_request({"model": "m", "messages": [], "max_tokens": 5})
    assert info.value.violations[0].field == "max_tokens"


@pytest.mark.parametrize(
    ("tier", "expected"),
    [("auto", chat_pb2.SERVICE_TIER_AUTO), ("standard_only", chat_pb2.SERVICE_TIER_DEFAULT)],
)
def test_service_tier_is_carried_to_the_call(tier: str, expected: int) -> None:
    assert parse_messages_request(_body(service_tier=tier)).input.service_tier == expected
