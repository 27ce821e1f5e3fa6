"""Anthropic content blocks -> llmesh message parts, thinking blocks and tool calls.

Every block keeps what an Anthropic target needs to receive it unchanged: ``cache_control``
breakpoints, thinking signatures and redacted data byte-for-byte, tool ids. A block of a
kind llmesh does not carry is a 400 naming its path.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from llmesh.services.common.errors import invalid
from llmesh.v1 import chat_pb2

__all__ = [
    "block_object",
    "cache_control",
    "check_keys",
    "media_part",
    "text_of",
    "thinking_block",
    "tool_result_message",
    "tool_use_call",
]

_TTLS = ("5m", "1h")


def text_of(value: Any, path: str) -> str:
    """A string field's value."""
    if not isinstance(value, str):
        raise invalid(path, "must be a string")
    return value


def block_object(value: Any, path: str) -> dict[str, Any]:
    """A content block: an object with a string ``type``."""
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise invalid(path, "must be a content block object with a type")
    return value


def check_keys(block: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
    """Refuse a key of `block` outside `allowed` (plus ``type`` and ``cache_control``); a
    null value counts as absent (SDKs send a block back as they received it, nulls too)."""
    for key, value in block.items():
        if value is not None and key not in allowed and key not in ("type", "cache_control"):
            raise invalid(f"{path}.{key}", "is not a supported field of this block")


def cache_control(block: dict[str, Any], path: str) -> chat_pb2.CacheControl | None:
    """The block's ``cache_control`` breakpoint, or None."""
    raw = block.get("cache_control")
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("type") != "ephemeral":
        raise invalid(f"{path}.cache_control", 'must be {"type": "ephemeral"}')
    ttl = raw.get("ttl")
    if ttl is not None and ttl not in _TTLS:
        raise invalid(f"{path}.cache_control.ttl", 'must be "5m" or "1h"')
    for key in raw:
        if key not in ("type", "ttl"):
            raise invalid(f"{path}.cache_control.{key}", "is not a supported field")
    return chat_pb2.CacheControl(ttl=ttl or "")


def _b64(value: Any, path: str) -> bytes:
    if not isinstance(value, str):
        raise invalid(path, "must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(path, "is not valid base64") from None


def _source(block: dict[str, Any], path: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{path}.source", "must be an object")
    return source


def _image(block: dict[str, Any], path: str) -> chat_pb2.ContentPart:
    check_keys(block, ("source",), path)
    source = _source(block, path)
    kind = source.get("type")
    if kind == "url":
        url = text_of(source.get("url"), f"{path}.source.url")
        return chat_pb2.ContentPart(image=chat_pb2.ImagePart(url=url))
    if kind == "base64":
        media_type = text_of(source.get("media_type"), f"{path}.source.media_type")
        data = _b64(source.get("data"), f"{path}.source.data")
        return chat_pb2.ContentPart(image=chat_pb2.ImagePart(data=data, media_type=media_type))
    raise invalid(f"{path}.source.type", 'must be "base64" or "url"')


def _document(block: dict[str, Any], path: str) -> chat_pb2.ContentPart:
    check_keys(block, ("source", "title", "context", "citations"), path)
    if block.get("citations") not in (None, {"enabled": False}):
        raise invalid(f"{path}.citations", "citations are not supported")
    title = block.get("title") or ""
    text_of(title, f"{path}.title")
    if block.get("context") is not None:
        raise invalid(f"{path}.context", "document context is not supported")
    source = _source(block, path)
    kind = source.get("type")
    if kind == "url":
        url = text_of(source.get("url"), f"{path}.source.url")
        # Anthropic's URL documents are PDFs, the one document type llmesh carries.
        doc = chat_pb2.DocumentPart(url=url, media_type="application/pdf", title=title)
        return chat_pb2.ContentPart(document=doc)
    if kind == "base64":
        media_type = text_of(source.get("media_type"), f"{path}.source.media_type")
        data = _b64(source.get("data"), f"{path}.source.data")
        doc = chat_pb2.DocumentPart(data=data, media_type=media_type, title=title)
        return chat_pb2.ContentPart(document=doc)
    if kind == "text":
        # A plain-text document reads as its text: every provider takes that.
        return chat_pb2.ContentPart(text=text_of(source.get("data"), f"{path}.source.data"))
    raise invalid(f"{path}.source.type", 'must be "base64", "url" or "text"')


def media_part(block: dict[str, Any], path: str) -> chat_pb2.ContentPart:
    """A text, image or document block as a content part, with its breakpoint."""
    kind = block["type"]
    if kind == "text":
        check_keys(block, ("text", "citations"), path)
        if block.get("citations"):
            raise invalid(f"{path}.citations", "citations are not supported")
        part = chat_pb2.ContentPart(text=text_of(block.get("text"), f"{path}.text"))
    elif kind == "image":
        part = _image(block, path)
    elif kind == "document":
        part = _document(block, path)
    else:
        raise invalid(f"{path}.type", f"unsupported content block {kind!r} here")
    control = cache_control(block, path)
    if control is not None:
        part.cache_control.CopyFrom(control)
    return part


def tool_result_message(block: dict[str, Any], path: str, chat: chat_pb2.ChatInput) -> None:
    """A ``tool_result`` block as a tool message of `chat`."""
    check_keys(block, ("tool_use_id", "content", "is_error"), path)
    message = chat.messages.add(
        role=chat_pb2.ROLE_TOOL,
        tool_call_id=text_of(block.get("tool_use_id"), f"{path}.tool_use_id"),
    )
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise invalid(f"{path}.is_error", "must be a boolean")
    message.is_error = bool(is_error)
    control = cache_control(block, path)
    if control is not None:
        message.cache_control.CopyFrom(control)
    content = block.get("content")
    if content is None or isinstance(content, str):
        message.content = content or ""
        return
    if not isinstance(content, list):
        raise invalid(f"{path}.content", "must be a string or an array of content blocks")
    parts = [
        media_part(block_object(b, f"{path}.content[{j}]"), f"{path}.content[{j}]")
        for j, b in enumerate(content)
    ]
    if not parts:
        return
    first = parts[0]
    if (
        len(parts) == 1
        and first.WhichOneof("kind") == "text"
        and not first.HasField("cache_control")
    ):
        message.content = first.text  # one plain text block reads as the string
        return
    message.parts.extend(parts)  # several blocks stay apart, as they were sent


def tool_use_call(block: dict[str, Any], path: str) -> chat_pb2.ToolCall:
    """A ``tool_use`` block as a tool call."""
    check_keys(block, ("id", "name", "input"), path)
    arguments = block.get("input", {})
    if not isinstance(arguments, dict):
        raise invalid(f"{path}.input", "must be an object")
    call = chat_pb2.ToolCall(
        id=text_of(block.get("id"), f"{path}.id"),
        name=text_of(block.get("name"), f"{path}.name"),
        arguments=json.dumps(arguments, ensure_ascii=False, separators=(",", ":")),
    )
    control = cache_control(block, path)
    if control is not None:
        call.cache_control.CopyFrom(control)
    return call


def thinking_block(block: dict[str, Any], path: str) -> chat_pb2.ThinkingBlock:
    """A ``thinking`` or ``redacted_thinking`` block, byte-for-byte."""
    if "cache_control" in block:
        raise invalid(f"{path}.cache_control", "thinking blocks take no cache_control")
    if block["type"] == "redacted_thinking":
        check_keys(block, ("data",), path)
        return chat_pb2.ThinkingBlock(redacted_data=text_of(block.get("data"), f"{path}.data"))
    check_keys(block, ("thinking", "signature"), path)
    return chat_pb2.ThinkingBlock(
        thinking=text_of(block.get("thinking"), f"{path}.thinking"),
        signature=text_of(block.get("signature"), f"{path}.signature"),
    )
