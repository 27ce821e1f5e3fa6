"""Caller-placed prompt-cache breakpoints, tool errors and the user: from the proto through
the domain to Anthropic's wire (placed where the caller put them), ignored by OpenAI's, and
in the response cache's key only where they change the reply."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.chat import (
    CacheControl,
    ChatRequest,
    Message,
    Role,
    TextPart,
    ThinkingBlock,
    Tool,
    ToolCall,
)
from llmesh.services.orchestrator.convert import chat_call_from_proto
from llmesh.services.orchestrator.providers import anthropic_wire, openai_wire
from llmesh.services.orchestrator.response_cache import cache_key
from llmesh.v1 import chat_pb2

FIVE = CacheControl()
HOUR = CacheControl("1h")


def _request() -> ChatRequest:
    return ChatRequest(
        messages=(
            Message(Role.SYSTEM, parts=(TextPart("rules", HOUR), TextPart("more"))),
            Message(Role.USER, parts=(TextPart("question", FIVE),)),
            Message(
                Role.ASSISTANT,
                tool_calls=(ToolCall("toolu_1", "lookup", '{"q":"x"}', FIVE),),
            ),
            Message(
                Role.TOOL, "no such page", tool_call_id="toolu_1", cache_control=FIVE, is_error=True
            ),
        ),
        tools=(Tool("lookup", "find", {"type": "object"}, HOUR),),
        prompt_cache="off",
    )


def test_anthropic_receives_the_breakpoints_where_they_were_placed() -> None:
    body = anthropic_wire.to_provider_request("claude-sonnet-4-6", _request())
    ephemeral: dict[str, Any] = {"type": "ephemeral"}
    hour = {"type": "ephemeral", "ttl": "1h"}
    assert body["tools"][0]["cache_control"] == hour
    assert [b.get("cache_control") for b in body["system"]] == [hour, None]
    assert body["messages"][0]["content"][0]["cache_control"] == ephemeral
    assert body["messages"][1]["content"][0]["cache_control"] == ephemeral
    result = body["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert result["cache_control"] == ephemeral


def test_openai_ignores_breakpoints_and_tool_errors() -> None:
    body = openai_wire.to_provider_request("gpt-4o-mini", _request())
    assert "cache_control" not in repr(body) and "is_error" not in repr(body)
    assert body["messages"][-1] == {
        "role": "tool",
        "content": "no such page",
        "tool_call_id": "toolu_1",
    }


def test_a_redacted_thinking_block_cannot_go_to_openai() -> None:
    req = ChatRequest(
        messages=(
            Message(Role.USER, "hi"),
            Message(Role.ASSISTANT, "hello", thinking=(ThinkingBlock(redacted_data="xx"),)),
            Message(Role.USER, "again"),
        )
    )
    with pytest.raises(LlmeshError) as info:
        openai_wire.to_provider_request("gpt-4o-mini", req)
    assert info.value.violations[0].field == "messages[1].thinking[0].redacted_data"
    body = anthropic_wire.to_provider_request("claude-sonnet-4-6", req)
    assert body["messages"][1]["content"][0] == {"type": "redacted_thinking", "data": "xx"}


def test_breakpoints_survive_the_proto() -> None:
    hour = chat_pb2.CacheControl(ttl="1h")
    inp = chat_pb2.ChatInput(
        model="anthropic/claude-sonnet-4-6",
        messages=[
            chat_pb2.Message(
                role=chat_pb2.ROLE_USER,
                parts=[chat_pb2.ContentPart(text="q", cache_control=hour)],
            ),
            chat_pb2.Message(
                role=chat_pb2.ROLE_ASSISTANT,
                tool_calls=[chat_pb2.ToolCall(id="t", name="f", cache_control=hour)],
            ),
            chat_pb2.Message(
                role=chat_pb2.ROLE_TOOL,
                content="r",
                tool_call_id="t",
                is_error=True,
                cache_control=chat_pb2.CacheControl(),
            ),
        ],
        tools=[chat_pb2.Tool(name="f", cache_control=hour)],
    )
    req = chat_call_from_proto(inp, True).request
    assert req.messages[0].parts == (TextPart("q", HOUR),)
    assert req.messages[1].tool_calls[0].cache_control == HOUR
    assert req.messages[2].cache_control == FIVE and req.messages[2].is_error
    assert req.messages[0].cache_control is None
    assert req.tools[0].cache_control == HOUR


def test_an_unknown_ttl_names_its_field() -> None:
    inp = chat_pb2.ChatInput(
        model="anthropic/claude-sonnet-4-6",
        messages=[
            chat_pb2.Message(
                role=chat_pb2.ROLE_USER,
                parts=[
                    chat_pb2.ContentPart(text="q", cache_control=chat_pb2.CacheControl(ttl="2d"))
                ],
            )
        ],
    )
    with pytest.raises(LlmeshError) as info:
        chat_call_from_proto(inp, True)
    assert info.value.violations[0].field == "input.messages[0].parts[0].cache_control.ttl"


def test_the_response_cache_key_follows_what_changes_the_reply() -> None:
    def key(request: ChatRequest) -> str:
        return cache_key("m", (), request, tenant="t")

    plain = ChatRequest(
        (
            Message(Role.USER, "hi"),
            Message(Role.ASSISTANT, tool_calls=(ToolCall("t1", "f", "{}"),)),
            Message(Role.TOOL, "boom", tool_call_id="t1"),
        ),
        temperature=0,
    )
    failed = replace(
        plain, messages=(*plain.messages[:2], replace(plain.messages[2], is_error=True))
    )
    marked = replace(
        plain, messages=(*plain.messages[:2], replace(plain.messages[2], cache_control=HOUR))
    )
    assert key(failed) != key(plain)
    assert key(replace(plain, anthropic_beta=("b1",))) != key(plain)
    assert key(marked) == key(plain) == key(replace(plain, user="u-1"))


def test_the_user_goes_to_anthropic_as_metadata_user_id() -> None:
    req = ChatRequest((Message(Role.USER, "hi"),), user="u-1")
    assert anthropic_wire.to_provider_request("claude-x", req)["metadata"] == {"user_id": "u-1"}
    assert "metadata" not in anthropic_wire.to_provider_request("claude-x", replace(req, user=""))
    inp = chat_pb2.ChatInput(
        model="anthropic/claude-x",
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="hi")],
        metadata={"user": "u-1"},
    )
    assert chat_call_from_proto(inp, True).request.user == "u-1"
