"""llmesh replies -> Responses API objects: output items, usage, the response object.

A reply becomes, in order: one ``reasoning`` item per thinking block, a ``message`` item with
one ``output_text`` part (when the model wrote text, or called nothing), and one
``function_call`` item per tool call; a reply whose blocks came in another order (its
``block_order``, as under interleaved thinking) becomes one item per block in that order.
A reply cut by ``max_output_tokens`` or a content filter is ``status: "incomplete"`` with
``incomplete_details.reason``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from llmesh.gateway.responses_api.parts import reasoning_item
from llmesh.v1 import chat_pb2, orchestrator_pb2

__all__ = [
    "function_call_item",
    "item_id",
    "message_item",
    "output_items",
    "response_object",
    "status_of",
    "usage_object",
]

_INCOMPLETE: dict[int, str] = {
    chat_pb2.FINISH_REASON_LENGTH: "max_output_tokens",
    chat_pb2.FINISH_REASON_CONTENT_FILTER: "content_filter",
}


def item_id(prefix: str) -> str:
    """A fresh id such as ``msg_<hex>``."""
    return f"{prefix}_{secrets.token_hex(12)}"


def status_of(finish: int) -> tuple[str, dict[str, str] | None]:
    """The response status and ``incomplete_details`` for a `FinishReason`."""
    reason = _INCOMPLETE.get(finish)
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def usage_object(usage: chat_pb2.Usage) -> dict[str, Any]:
    """The Responses usage object; input tokens include cache reads and writes (as /v1 chat)."""
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": prompt + usage.output_tokens,
    }


def message_item(item: str, text: str, status: str) -> dict[str, Any]:
    """An assistant ``message`` item with one ``output_text`` part."""
    return {
        "type": "message",
        "id": item,
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def function_call_item(
    item: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    """A ``function_call`` item."""
    return {
        "type": "function_call",
        "id": item,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def _in_order(message: chat_pb2.Message, status: str) -> list[dict[str, Any]]:
    """The items of a message with a ``block_order``: one per block, text runs cut from
    ``content`` by their lengths (a lone text block of length 0 is the whole content)."""
    whole = sum(1 for r in message.block_order if r.kind == chat_pb2.BLOCK_KIND_TEXT) == 1
    items: list[dict[str, Any]] = []
    at = 0
    for ref in message.block_order:
        if ref.kind == chat_pb2.BLOCK_KIND_THINKING:
            items.append(reasoning_item(item_id("rs"), message.thinking[ref.index]))
        elif ref.kind == chat_pb2.BLOCK_KIND_TOOL_CALL:
            call = message.tool_calls[ref.index]
            items.append(
                function_call_item(item_id("fc"), call.id, call.name, call.arguments, "completed")
            )
        else:
            length = len(message.content) - at if whole and not ref.text_length else ref.text_length
            items.append(message_item(item_id("msg"), message.content[at : at + length], status))
            at += length
    if not message.tool_calls and not any(i["type"] == "message" for i in items):
        items.append(message_item(item_id("msg"), "", status))
    return items


def output_items(message: chat_pb2.Message, status: str) -> list[dict[str, Any]]:
    """The output items of a whole assistant message, in its ``block_order`` when it has one
    (interleaved thinking), else reasoning, then the message, then the calls."""
    if message.block_order:
        return _in_order(message, status)
    items = [reasoning_item(item_id("rs"), block) for block in message.thinking]
    if message.content or not message.tool_calls:
        items.append(message_item(item_id("msg"), message.content, status))
    for call in message.tool_calls:
        items.append(
            function_call_item(item_id("fc"), call.id, call.name, call.arguments, "completed")
        )
    return items


def response_object(
    response_id: str,
    echo: dict[str, Any],
    *,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    incomplete: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
    previous_response_id: str | None = None,
    store: bool = False,
) -> dict[str, Any]:
    """A ``response`` object."""
    done = status in ("completed", "incomplete", "failed")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": incomplete,
        **echo,
        "output": output,
        "usage": usage if done else None,
        "previous_response_id": previous_response_id,
        "store": store,
    }


def whole_response(
    reply: orchestrator_pb2.ChatResponse,
    response_id: str,
    echo: dict[str, Any],
    created_at: int,
    previous_response_id: str | None,
    store: bool,
) -> dict[str, Any]:
    """The response object of a unary reply."""
    status, incomplete = status_of(reply.finish_reason)
    return response_object(
        response_id,
        echo,
        created_at=created_at,
        status=status,
        output=output_items(reply.message, "completed" if status == "completed" else status),
        usage=usage_object(reply.usage),
        incomplete=incomplete,
        previous_response_id=previous_response_id,
        store=store,
    )
