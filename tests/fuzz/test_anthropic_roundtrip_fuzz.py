"""llmesh <-> the Anthropic Messages wire, both ways.

- A `ChatInput` (what any llmesh surface builds) through the orchestrator's validation and
  the Anthropic adapter's wire gives a Messages body that llmesh's own ``/v1/messages``
  surface accepts, and that body read back and sent again is the same body: nothing an
  Anthropic model receives is lost or changed by the trip (a fixed point after one pass).
- A valid Anthropic Messages body read by the gateway passes the orchestrator's validation,
  and is sent to Anthropic as it came (the same fixed point, from the other side).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from llmesh.gateway.anthropic.request import parse_messages_request
from llmesh.services.orchestrator.convert import chat_call_from_proto
from llmesh.services.orchestrator.providers.anthropic_wire import to_provider_request
from llmesh.v1 import chat_pb2

_TEXT = st.text(max_size=12)
_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_ID = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=8)
_ARGS = st.dictionaries(_NAME, st.integers(-5, 5) | _TEXT | st.booleans(), max_size=3)
_CONTROL = st.none() | st.sampled_from(["", "5m", "1h"])
_DATA = st.binary(min_size=1, max_size=8)


def _control(ttl: str | None) -> chat_pb2.CacheControl | None:
    return None if ttl is None else chat_pb2.CacheControl(ttl=ttl)


@st.composite
def _part(draw: st.DrawFn, text_only: bool = False) -> chat_pb2.ContentPart:
    kind = "text" if text_only else draw(st.sampled_from(["text", "image", "document"]))
    if kind == "text":
        part = chat_pb2.ContentPart(text=draw(_TEXT))
    elif kind == "image":
        if draw(st.booleans()):
            image = chat_pb2.ImagePart(url="https://example.com/" + draw(_NAME) + ".png")
        else:
            image = chat_pb2.ImagePart(data=draw(_DATA), media_type="image/png")
        part = chat_pb2.ContentPart(image=image)
    else:
        title = draw(st.sampled_from(["", "report"]))
        if draw(st.booleans()):
            doc = chat_pb2.DocumentPart(
                url="https://example.com/a.pdf", media_type="application/pdf", title=title
            )
        else:
            doc = chat_pb2.DocumentPart(data=draw(_DATA), media_type="application/pdf", title=title)
        part = chat_pb2.ContentPart(document=doc)
    control = _control(draw(_CONTROL))
    if control is not None:
        part.cache_control.CopyFrom(control)
    return part


@st.composite
def _message(draw: st.DrawFn) -> chat_pb2.Message:
    role = draw(
        st.sampled_from(
            [chat_pb2.ROLE_SYSTEM, chat_pb2.ROLE_USER, chat_pb2.ROLE_ASSISTANT, chat_pb2.ROLE_TOOL]
        )
    )
    message = chat_pb2.Message(role=role)
    if draw(st.booleans()):
        text_only = role in (chat_pb2.ROLE_SYSTEM, chat_pb2.ROLE_ASSISTANT)
        message.parts.extend(draw(st.lists(_part(text_only), max_size=3)))
    else:
        message.content = draw(_TEXT)
        control = _control(draw(_CONTROL))
        if control is not None and role != chat_pb2.ROLE_ASSISTANT:
            message.cache_control.CopyFrom(control)
    if role == chat_pb2.ROLE_ASSISTANT:
        for block in draw(st.lists(st.tuples(_TEXT, _ID, st.booleans()), max_size=2)):
            thinking, signature, redacted = block
            if redacted:
                message.thinking.add(redacted_data=signature)
            else:
                message.thinking.add(thinking=thinking, signature=signature)
        for call_id, name, args in draw(st.lists(st.tuples(_ID, _NAME, _ARGS), max_size=2)):
            message.tool_calls.add(id=call_id, name=name, arguments=json.dumps(args))
    if role == chat_pb2.ROLE_TOOL:
        message.tool_call_id = draw(_ID)
        message.is_error = draw(st.booleans())
    return message


@st.composite
def chat_inputs(draw: st.DrawFn) -> chat_pb2.ChatInput:
    chat = chat_pb2.ChatInput(model="claude-x")
    chat.messages.extend(draw(st.lists(_message(), min_size=1, max_size=5)))
    names = draw(st.lists(_NAME, unique=True, max_size=3))
    for name in names:
        tool = chat.tools.add(name=name, description=draw(_TEXT))
        if draw(st.booleans()):
            tool.parameters.update({"type": "object", "properties": {"q": {"type": "string"}}})
        control = _control(draw(_CONTROL))
        if control is not None:
            tool.cache_control.CopyFrom(control)
    if names:
        mode = draw(
            st.sampled_from(
                [
                    chat_pb2.TOOL_CHOICE_MODE_UNSPECIFIED,
                    chat_pb2.TOOL_CHOICE_MODE_AUTO,
                    chat_pb2.TOOL_CHOICE_MODE_NONE,
                    chat_pb2.TOOL_CHOICE_MODE_REQUIRED,
                    chat_pb2.TOOL_CHOICE_MODE_TOOL,
                ]
            )
        )
        chat.tool_choice.mode = mode
        if mode == chat_pb2.TOOL_CHOICE_MODE_TOOL:
            chat.tool_choice.name = draw(st.sampled_from(names))
        parallel = draw(st.none() | st.booleans())
        if parallel is not None:
            chat.parallel_tool_calls = parallel
    if draw(st.booleans()):
        chat.temperature = draw(st.floats(0, 1))
    if draw(st.booleans()):
        chat.top_p = draw(st.floats(0, 1, exclude_min=True))
    if draw(st.booleans()):
        chat.max_tokens = draw(st.integers(1, 2**31 - 1))
    if draw(st.booleans()):
        budget = draw(st.integers(1024, 4096))
        chat.thinking_budget_tokens = budget
        if chat.HasField("max_tokens") and chat.max_tokens <= budget:
            chat.max_tokens = budget + 1
    chat.stop.extend(draw(st.lists(st.text(min_size=1, max_size=4), max_size=3)))
    if draw(st.booleans()):
        chat.metadata["user"] = draw(_ID)
    return chat


def _wire(chat: chat_pb2.ChatInput) -> dict[str, Any]:
    call = chat_call_from_proto(chat, True)
    body = to_provider_request(call.model, call.request)
    decoded: dict[str, Any] = json.loads(json.dumps(body))  # as it travels: JSON
    return decoded


def _plain(content: Any) -> Any:
    """A tool result's content as Anthropic reads it: one plain text block is its string."""
    if isinstance(content, list) and len(content) == 1:
        block = content[0]
        if block.get("type") == "text" and "cache_control" not in block:
            return block["text"]
    return content


_TURN_ORDER = {"thinking": 0, "redacted_thinking": 0, "tool_use": 2}


def _canonical(body: dict[str, Any]) -> dict[str, Any]:
    """`body` up to what one llmesh message can say: an assistant turn is its thinking, then
    its text, then its tool calls (two turns Anthropic merged may have interleaved them)."""
    for message in body["messages"]:
        if message["role"] == "assistant":
            message["content"].sort(key=lambda b: _TURN_ORDER.get(b["type"], 1))
        for block in message["content"]:
            if block.get("type") == "tool_result":
                block["content"] = _plain(block["content"])
    return body


def _read_back(body: dict[str, Any]) -> chat_pb2.ChatInput:
    return parse_messages_request(body).input


@given(chat_inputs())
def test_the_anthropic_wire_is_read_back_unchanged(chat: chat_pb2.ChatInput) -> None:
    body = _wire(chat)
    assume(body["messages"])  # nothing left to send: Anthropic refuses it, and so does llmesh
    assert _canonical(_wire(_read_back(body))) == _canonical(body)


@given(chat_inputs())
def test_a_messages_body_is_sent_on_as_it_came(chat: chat_pb2.ChatInput) -> None:
    body = _wire(chat)  # a valid Messages body, as a client would send it
    assume(body["messages"])
    again = _read_back(body)
    assert parse_messages_request(_wire(again)).input == again


def test_binary_media_travel_as_base64() -> None:
    chat = chat_pb2.ChatInput(model="claude-x")
    chat.messages.add(role=chat_pb2.ROLE_USER).parts.add(
        image=chat_pb2.ImagePart(data=b"\x89PNG", media_type="image/png")
    )
    body = _wire(chat)
    source = body["messages"][0]["content"][0]["source"]
    assert base64.b64decode(source["data"]) == b"\x89PNG"
    assert _read_back(body).messages[0].parts[0].image.data == b"\x89PNG"
