"""Folding a stream of events into one whole reply (the unary Chat RPC)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ToolCall
from llmesh.services.core.events import (
    CallEvent,
    Completed,
    Started,
    Switched,
    TextDelta,
    ToolCallDelta,
)
from llmesh.services.core.policy import MidStreamPolicy


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole reply: who served it, its text and tool calls, and how it finished."""

    started: Started
    text: str
    tool_calls: tuple[ToolCall, ...]
    completed: Completed


async def collect(events: AsyncIterator[CallEvent]) -> Reply:
    """Consume a stream; argument fragments are joined per tool-call index."""
    started: Started | None = None
    text: list[str] = []
    calls: dict[int, _PartialCall] = {}
    async for event in events:  # the caller closes `events` (aclosing) when we return
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = calls.setdefault(event.index, _PartialCall())
            call.id = call.id or event.id
            call.name = call.name or event.name
            call.arguments.append(event.arguments_delta)
        elif isinstance(event, Started):
            started = event
        elif isinstance(event, Switched) and event.policy is MidStreamPolicy.RESTART:
            text.clear()  # the new target starts over
            calls.clear()
        elif isinstance(event, Completed):
            if started is None:  # pragma: no cover - the engine always starts first
                raise LlmeshError(Reason.INTERNAL, "stream finished before it started")
            tool_calls = tuple(
                ToolCall(c.id, c.name, "".join(c.arguments) or "{}")
                for _, c in sorted(calls.items())
            )
            return Reply(started, "".join(text), tool_calls, event)
    raise LlmeshError(Reason.STREAM_INTERRUPTED, "stream ended before its terminal event")
