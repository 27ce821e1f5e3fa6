"""Anthropic Messages requests -> llmesh's `ChatInput` (pure functions).

Every field of the body is either translated, or refused with a 400 naming it: nothing is
dropped silently. ``system`` becomes a system message (text blocks as parts, keeping their
``cache_control``); a user turn's ``tool_result`` blocks become tool messages ahead of its
other blocks; an assistant turn's ``thinking`` / ``redacted_thinking`` blocks its thinking,
its ``tool_use`` blocks its tool calls, and their order across those lists its
``block_order`` (when not the usual thinking, text, tool calls). ``service_tier`` (``auto``,
``standard_only``) becomes the call's tier. ``top_k`` has no place in `ChatInput` and is
refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llmesh.gateway.anthropic.content import (
    block_object,
    cache_control,
    check_keys,
    media_part,
    text_of,
    thinking_block,
    tool_result_message,
    tool_use_call,
)
from llmesh.gateway.inputs import named
from llmesh.services.common.errors import invalid
from llmesh.v1 import chat_pb2

__all__ = ["FIELDS", "MessagesRequest", "parse_count_request", "parse_messages_request"]

FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
    }
)
"""The body fields translated; any other is a 400 naming it."""

_SERVICE_TIERS = {
    "auto": chat_pb2.SERVICE_TIER_AUTO,
    "standard_only": chat_pb2.SERVICE_TIER_DEFAULT,
}
"""Anthropic's ``service_tier`` values and the tiers they are (OpenAI targets get ``auto``
and ``default``)."""

_INT32_MAX = 2**31 - 1
_USER_BLOCKS = ("text", "image", "document", "tool_result")
_ASSISTANT_BLOCKS = ("text", "tool_use", "thinking", "redacted_thinking")


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """A validated ``POST /v1/messages`` body."""

    input: chat_pb2.ChatInput
    model: str
    """The model as the client wrote it; echoed in the response."""
    stream: bool


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(key, "must be a number")
    if not low <= value <= high:
        raise invalid(key, f"must be between {low:g} and {high:g}")
    return float(value)


def _int(value: Any, path: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(path, "must be an integer")
    if not low <= value <= _INT32_MAX:
        raise invalid(path, f"must be between {low} and {_INT32_MAX}")
    return value


def _system(value: Any, chat: chat_pb2.ChatInput) -> None:
    if isinstance(value, str):
        if value:
            chat.messages.add(role=chat_pb2.ROLE_SYSTEM, content=value)
        return
    if not isinstance(value, list):
        raise invalid("system", "must be a string or an array of text blocks")
    message = chat.messages.add(role=chat_pb2.ROLE_SYSTEM)
    for j, raw in enumerate(value):
        path = f"system[{j}]"
        block = block_object(raw, path)
        if block["type"] != "text":
            raise invalid(f"{path}.type", 'system blocks must be "text"')
        message.parts.append(media_part(block, path))


def _blocks(content: Any, path: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid(path, "must be a string or an array of content blocks")
    return [block_object(b, f"{path}[{j}]") for j, b in enumerate(content)]


def _add_parts(message: chat_pb2.Message, parts: list[chat_pb2.ContentPart]) -> None:
    """Plain text stays `content`; several blocks, media or breakpoints become parts."""
    single = len(parts) == 1 and parts[0].WhichOneof("kind") == "text"
    if single and not parts[0].HasField("cache_control"):
        message.content = parts[0].text
        return
    message.parts.extend(parts)


def _user(content: Any, path: str, chat: chat_pb2.ChatInput) -> None:
    parts = []
    for j, block in enumerate(_blocks(content, path)):
        at = f"{path}[{j}]" if isinstance(content, list) else path
        if block["type"] not in _USER_BLOCKS:
            raise invalid(f"{at}.type", f"a user turn cannot hold a {block['type']!r} block")
        if block["type"] == "tool_result":
            tool_result_message(block, at, chat)
        else:
            parts.append(media_part(block, at))
    if parts or not isinstance(content, list):
        _add_parts(chat.messages.add(role=chat_pb2.ROLE_USER), parts)


_RANK = {
    chat_pb2.BLOCK_KIND_THINKING: 0,
    chat_pb2.BLOCK_KIND_TEXT: 1,
    chat_pb2.BLOCK_KIND_TOOL_CALL: 2,
}


def _assistant(content: Any, path: str, chat: chat_pb2.ChatInput) -> None:
    """An assistant turn; its blocks' order is kept in ``block_order`` when it is not the
    usual one (thinking, text, tool calls), as interleaved thinking answers."""
    message = chat.messages.add(role=chat_pb2.ROLE_ASSISTANT)
    parts: list[chat_pb2.ContentPart] = []
    order: list[tuple[chat_pb2.BlockKind, int]] = []
    for j, block in enumerate(_blocks(content, path)):
        at = f"{path}[{j}]" if isinstance(content, list) else path
        kind = block["type"]
        if kind not in _ASSISTANT_BLOCKS:
            raise invalid(f"{at}.type", f"an assistant turn cannot hold a {kind!r} block")
        if kind == "text":
            part = media_part(block, at)
            if part.text or part.HasField("cache_control"):
                order.append((chat_pb2.BLOCK_KIND_TEXT, len(parts)))
                parts.append(part)
        elif kind == "tool_use":
            order.append((chat_pb2.BLOCK_KIND_TOOL_CALL, len(message.tool_calls)))
            message.tool_calls.append(tool_use_call(block, at))
        else:
            order.append((chat_pb2.BLOCK_KIND_THINKING, len(message.thinking)))
            message.thinking.append(thinking_block(block, at))
    _add_parts(message, parts)
    if order != sorted(order, key=lambda ref: (_RANK[ref[0]], ref[1])):
        # a text-only turn has one text block (several would be parts): the whole content
        message.block_order.extend(chat_pb2.BlockRef(kind=k, index=i) for k, i in order)


def _tools(value: Any, chat: chat_pb2.ChatInput) -> None:
    if not isinstance(value, list):
        raise invalid("tools", "must be an array")
    for i, raw in enumerate(value):
        path = f"tools[{i}]"
        if not isinstance(raw, dict):
            raise invalid(path, "must be an object")
        if raw.get("type") not in (None, "custom"):
            raise invalid(f"{path}.type", f"server tools ({raw.get('type')!r}) are not supported")
        check_keys(raw, ("name", "description", "input_schema"), path)
        tool = chat.tools.add(name=text_of(raw.get("name"), f"{path}.name"))
        if raw.get("description") is not None:
            tool.description = text_of(raw["description"], f"{path}.description")
        schema = raw.get("input_schema")
        if not isinstance(schema, dict):
            raise invalid(f"{path}.input_schema", "must be a JSON Schema object")
        tool.parameters.update(schema)
        control = cache_control(raw, path)
        if control is not None:
            tool.cache_control.CopyFrom(control)


_CHOICES = {
    "auto": chat_pb2.TOOL_CHOICE_MODE_AUTO,
    "any": chat_pb2.TOOL_CHOICE_MODE_REQUIRED,
    "tool": chat_pb2.TOOL_CHOICE_MODE_TOOL,
    "none": chat_pb2.TOOL_CHOICE_MODE_NONE,
}


def _tool_choice(value: Any, chat: chat_pb2.ChatInput) -> None:
    mode = named(_CHOICES, value.get("type")) if isinstance(value, dict) else None
    if mode is None:
        raise invalid("tool_choice.type", 'must be "auto", "any", "tool" or "none"')
    check_keys(value, ("name", "disable_parallel_tool_use"), "tool_choice")
    if "cache_control" in value:
        raise invalid("tool_choice.cache_control", "is not a supported field")
    chat.tool_choice.mode = mode
    if value["type"] == "tool":
        chat.tool_choice.name = text_of(value.get("name"), "tool_choice.name")
    disable = value.get("disable_parallel_tool_use")
    if disable is not None:
        if not isinstance(disable, bool):
            raise invalid("tool_choice.disable_parallel_tool_use", "must be a boolean")
        if disable and chat.tools:
            chat.parallel_tool_calls = False


def _thinking(value: Any, chat: chat_pb2.ChatInput) -> None:
    if not isinstance(value, dict) or value.get("type") not in ("enabled", "disabled"):
        raise invalid("thinking.type", 'must be "enabled" or "disabled"')
    if value["type"] == "enabled":
        chat.thinking_budget_tokens = _int(
            value.get("budget_tokens"), "thinking.budget_tokens", 1024
        )


def _metadata(value: Any, chat: chat_pb2.ChatInput) -> None:
    if not isinstance(value, dict):
        raise invalid("metadata", "must be an object")
    for key, item in value.items():
        if key != "user_id":
            raise invalid(f"metadata.{key}", "is not a supported field (only user_id)")
        if item is not None:
            chat.metadata["user"] = text_of(item, "metadata.user_id")


def _conversation(body: dict[str, Any]) -> chat_pb2.ChatInput:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "must be a non-empty string")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "must be a non-empty array")
    chat = chat_pb2.ChatInput(model=model)
    if body.get("system") is not None:
        _system(body["system"], chat)
    for i, raw in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(raw, dict):
            raise invalid(path, "must be an object")
        for key in raw:
            if key not in ("role", "content"):
                raise invalid(f"{path}.{key}", "is not a supported field")
        if "content" not in raw:
            raise invalid(f"{path}.content", "is required")
        if raw.get("role") == "user":
            _user(raw["content"], f"{path}.content", chat)
        elif raw.get("role") == "assistant":
            _assistant(raw["content"], f"{path}.content", chat)
        else:
            raise invalid(f"{path}.role", 'must be "user" or "assistant"')
    if body.get("tools") is not None:
        _tools(body["tools"], chat)
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], chat)
    if body.get("thinking") is not None:
        _thinking(body["thinking"], chat)
    return chat


def _check_fields(body: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            if key == "top_k":
                raise invalid("top_k", "is not supported: llmesh has no top-k sampling setting")
            raise invalid(key, "is not a supported field of this request")


def parse_messages_request(body: dict[str, Any]) -> MessagesRequest:
    """Validate a Messages body and translate it into a `ChatInput`."""
    _check_fields(body, FIELDS)
    if body.get("max_tokens") is None:
        raise invalid("max_tokens", "is required")
    chat = _conversation(body)
    chat.max_tokens = _int(body["max_tokens"], "max_tokens", 1)
    temperature = _number(body, "temperature", 0, 1)
    if temperature is not None:
        chat.temperature = temperature
    top_p = _number(body, "top_p", 0, 1)
    if top_p is not None:
        chat.top_p = top_p
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list):
            raise invalid("stop_sequences", "must be an array of strings")
        chat.stop.extend(text_of(s, f"stop_sequences[{i}]") for i, s in enumerate(stop))
    if body.get("metadata") is not None:
        _metadata(body["metadata"], chat)
    tier = body.get("service_tier")
    if tier is not None:
        if not isinstance(tier, str) or tier not in _SERVICE_TIERS:
            raise invalid("service_tier", 'must be "auto" or "standard_only"')
        chat.service_tier = _SERVICE_TIERS[tier]
    if _has_breakpoints(chat):
        # The caller manages its cache, as at Anthropic: no automatic breakpoints besides.
        chat.cache.prompt_cache = chat_pb2.PROMPT_CACHE_MODE_OFF
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream", "must be a boolean")
    return MessagesRequest(chat, chat.model, bool(stream))


_COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})


def parse_count_request(body: dict[str, Any]) -> chat_pb2.ChatInput:
    """Validate a ``count_tokens`` body (a Messages body without the sampling fields)."""
    _check_fields(body, _COUNT_FIELDS)
    return _conversation(body)


def _has_breakpoints(chat: chat_pb2.ChatInput) -> bool:
    if any(t.HasField("cache_control") for t in chat.tools):
        return True
    for m in chat.messages:
        if m.HasField("cache_control") or any(p.HasField("cache_control") for p in m.parts):
            return True
        if any(c.HasField("cache_control") for c in m.tool_calls):
            return True
    return False
