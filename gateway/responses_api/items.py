"""Responses API input items -> the messages of a `ChatInput` (pure functions).

``message`` items (or the short ``{"role", "content"}`` form) become messages: ``user``,
``system`` and ``developer`` (a system message) take ``input_text`` / ``input_image`` /
``input_file`` parts, ``assistant`` takes ``output_text`` / ``refusal``. ``function_call``
items become the tool calls of an assistant message, ``function_call_output`` items tool
messages, and ``reasoning`` items the thinking blocks (see `llmesh.gateway.responses_api.parts`).
Consecutive assistant-side items form one assistant message, as one model turn is one message
in llmesh (an assistant message item right after another starts a new turn). When their order
is not the usual one (reasoning, then text, then calls), as under Anthropic's interleaved
thinking, the message's ``block_order`` keeps it, each text item a run of ``content``. Anything
else is a 400 naming its path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llmesh.gateway.inputs import named
from llmesh.gateway.responses_api.fields import check_keys
from llmesh.gateway.responses_api.parts import text_of, thinking_block, to_parts
from llmesh.services.common.errors import invalid
from llmesh.v1 import chat_pb2

__all__ = ["add_items", "normalize_input"]

_ROLES = {
    "user": chat_pb2.ROLE_USER,
    "system": chat_pb2.ROLE_SYSTEM,
    "developer": chat_pb2.ROLE_SYSTEM,
    "assistant": chat_pb2.ROLE_ASSISTANT,
}
_INPUT_PARTS = ("input_text", "input_image", "input_file")
_OUTPUT_PARTS = ("output_text", "refusal")
_KEYS = {
    "message": frozenset({"type", "role", "content", "id", "status", "phase"}),
    "function_call": frozenset({"type", "call_id", "name", "arguments", "id", "status"}),
    "function_call_output": frozenset({"type", "call_id", "output", "id", "status"}),
}
_KINDS = "message, function_call, function_call_output or reasoning"


def normalize_input(value: Any) -> list[Any]:
    """The ``input`` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise invalid("input", "must be a string or a non-empty array of items")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise invalid(path, "must be a string")
    return value


_RANK = {
    chat_pb2.BLOCK_KIND_THINKING: 0,
    chat_pb2.BLOCK_KIND_TEXT: 1,
    chat_pb2.BLOCK_KIND_TOOL_CALL: 2,
}


class _Builder:
    """Appends items to a `ChatInput`, keeping the assistant message of the current turn and
    the order of its blocks."""

    def __init__(self, chat: chat_pb2.ChatInput) -> None:
        self.chat = chat
        self.turn: chat_pb2.Message | None = None
        self.order: list[chat_pb2.BlockRef] = []

    def close(self) -> None:
        """End the current turn: its order goes into ``block_order`` unless it is the usual
        one (every thinking block, then one text, then every call)."""
        turn, order = self.turn, self.order
        texts = sum(1 for r in order if r.kind == chat_pb2.BLOCK_KIND_TEXT)
        usual = sorted(order, key=lambda r: (_RANK[r.kind], r.index))
        if turn is not None and (texts > 1 or order != usual):
            turn.block_order.extend(order)
        self.turn, self.order = None, []

    def assistant(self, fresh: bool = False) -> chat_pb2.Message:
        """The current turn's assistant message, or a new one when `fresh` or none is open."""
        if self.turn is None or fresh:
            self.close()
            self.turn = self.chat.messages.add(role=chat_pb2.ROLE_ASSISTANT)
        return self.turn

    def place(self, kind: chat_pb2.BlockKind, index: int, length: int = 0) -> None:
        """The next block of the turn is `kind` number `index` (a text: `length` long)."""
        self.order.append(chat_pb2.BlockRef(kind=kind, index=index, text_length=length))

    def message(self, item: dict[str, Any], path: str) -> None:
        role = named(_ROLES, item.get("role"))
        if role is None:
            raise invalid(f"{path}.role", "must be one of user, system, developer, assistant")
        content = item.get("content")
        allowed = _OUTPUT_PARTS if role == chat_pb2.ROLE_ASSISTANT else _INPUT_PARTS
        if isinstance(content, str):
            parts = [chat_pb2.ContentPart(text=content)]
        elif isinstance(content, list):
            parts = to_parts(content, f"{path}.content", allowed)
        else:
            raise invalid(f"{path}.content", "must be a string or an array of content parts")
        text = text_of(parts)
        if role == chat_pb2.ROLE_ASSISTANT:
            last = self.order[-1].kind if self.order else None
            message = self.assistant(fresh=last == chat_pb2.BLOCK_KIND_TEXT)
            if text:
                self.place(chat_pb2.BLOCK_KIND_TEXT, 0, len(text))
                message.content += text
            return
        self.close()
        message = self.chat.messages.add(role=role)
        if text is None:
            message.parts.extend(parts)
        else:
            message.content = text

    def function_call(self, item: dict[str, Any], path: str) -> None:
        turn = self.assistant()
        self.place(chat_pb2.BLOCK_KIND_TOOL_CALL, len(turn.tool_calls))
        turn.tool_calls.add(
            id=_str(item.get("call_id"), f"{path}.call_id"),
            name=_str(item.get("name"), f"{path}.name"),
            arguments=_str(item.get("arguments", ""), f"{path}.arguments"),
        )

    def function_call_output(self, item: dict[str, Any], path: str) -> None:
        self.close()
        output = item.get("output")
        if isinstance(output, list):
            text = text_of(to_parts(output, f"{path}.output", ("input_text",)))
            output = text
        self.chat.messages.add(
            role=chat_pb2.ROLE_TOOL,
            tool_call_id=_str(item.get("call_id"), f"{path}.call_id"),
            content=_str(output, f"{path}.output"),
        )

    def reasoning(self, item: dict[str, Any], path: str) -> None:
        block = thinking_block(item, path)
        if block is None:
            return
        turn = self.assistant()
        self.place(chat_pb2.BLOCK_KIND_THINKING, len(turn.thinking))
        turn.thinking.append(block)


def add_items(
    items: Sequence[Any], chat: chat_pb2.ChatInput, path_of: Callable[[int], str]
) -> None:
    """Append the messages `items` stand for to `chat`; `path_of(i)` names item i in errors."""
    builder = _Builder(chat)
    for i, item in enumerate(items):
        path = path_of(i)
        if not isinstance(item, dict):
            raise invalid(path, "must be an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "reasoning":
            builder.reasoning(item, path)
            continue
        keys = named(_KEYS, kind)
        if keys is None:
            raise invalid(f"{path}.type", f"unsupported item type {kind!r}; use {_KINDS}")
        check_keys(item, keys, path)
        getattr(builder, str(kind))(item, path)  # a key of _KEYS: a string
    builder.close()
