"""Redacting a conversation: message text, text parts, tool-call arguments and tool results.

Thinking blocks are left as they are (the provider checks their signatures), as are images,
documents and audio. Field paths in errors are the request's (``messages[2].content``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from llmesh.services.common.redaction.redactor import Redaction
from llmesh.services.common.redaction.restore import PLACEHOLDER
from llmesh.services.core.chat import ContentPart, Message, TextPart, ToolCall

__all__ = ["redact_messages"]


def redact_messages(messages: Sequence[Message], redaction: Redaction) -> tuple[Message, ...]:
    """`messages` with every text redacted; unchanged messages are the same objects.

    Placeholder-like texts the input already holds (``<EMAIL_1>`` typed by the caller) are
    reserved first, so no value gets them and the reply's copies of them stay as they are.
    """
    for m in messages:
        for text in _texts(m):
            if "<" in text:
                redaction.reserved.update(PLACEHOLDER.findall(text))
    return tuple(_message(m, i, redaction) for i, m in enumerate(messages))


def _message(m: Message, i: int, redaction: Redaction) -> Message:
    where = f"messages[{i}]"
    content = redaction.apply(m.content, f"{where}.content")
    parts = m.parts
    if parts:
        new_parts: list[ContentPart] = []
        for j, p in enumerate(parts):
            if isinstance(p, TextPart) and p.text:
                text = redaction.apply(p.text, f"{where}.parts[{j}].text")
                new_parts.append(p if text is p.text else replace(p, text=text))
            else:
                new_parts.append(p)
        parts = tuple(new_parts)
    calls = m.tool_calls
    if calls:
        calls = tuple(_call(c, f"{where}.tool_calls[{k}]", redaction) for k, c in enumerate(calls))
    if content is m.content and parts == m.parts and calls == m.tool_calls:
        return m
    return replace(m, content=content, parts=parts, tool_calls=calls)


def _texts(m: Message) -> list[str]:
    texts = [m.content, *(c.arguments for c in m.tool_calls)]
    texts += [p.text for p in m.parts if isinstance(p, TextPart)]
    return texts


def _call(c: ToolCall, where: str, redaction: Redaction) -> ToolCall:
    arguments = redaction.apply(c.arguments, f"{where}.arguments")
    return c if arguments is c.arguments else replace(c, arguments=arguments)
