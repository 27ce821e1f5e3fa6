"""Folding a stream of events into one whole reply (the unary Chat RPC)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.blocks import OrderRecorder
from llmesh.services.core.chat import BlockKind, BlockRef, ThinkingBlock, ToolCall
from llmesh.services.core.events import (
    CallEvent,
    Completed,
    ReasoningDelta,
    Started,
    Switched,
    TextDelta,
    TokenLogprob,
    ToolCallDelta,
)
from llmesh.services.core.policy import MidStreamPolicy


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _PartialThinking:
    text: list[str] = field(default_factory=list)
    signature: str = ""
    redacted_data: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole reply: who served it, its text, tool calls and thinking, and how it finished."""

    started: Started
    text: str
    tool_calls: tuple[ToolCall, ...]
    completed: Completed
    thinking: tuple[ThinkingBlock, ...] = ()
    """The reply's thinking blocks, kept apart from its text (signatures byte-for-byte)."""
    logprobs: tuple[TokenLogprob, ...] = ()
    """The text's tokens with their log probabilities, when the call asked for them."""
    order: tuple[BlockRef, ...] = ()
    """The order of the blocks when it is not the usual one (thinking, text, tool calls)."""


async def collect(events: AsyncIterator[CallEvent]) -> Reply:
    """Consume a stream; argument fragments are joined per tool-call index, reasoning
    fragments per thinking-block index; the order the blocks came in is recorded."""
    started: Started | None = None
    text: list[str] = []
    calls: dict[int, _PartialCall] = {}
    thinking: dict[int, _PartialThinking] = {}
    logprobs: list[TokenLogprob] = []
    order = OrderRecorder()
    async for event in events:  # the caller closes `events` (aclosing) when we return
        if isinstance(event, TextDelta):
            text.append(event.text)
            logprobs.extend(event.logprobs)
            order.text(len(event.text))
        elif isinstance(event, ToolCallDelta):
            call = calls.setdefault(event.index, _PartialCall())
            call.id = call.id or event.id
            call.name = call.name or event.name
            call.arguments.append(event.arguments_delta)
            order.block(BlockKind.TOOL_CALL, event.index)
        elif isinstance(event, ReasoningDelta):
            block = thinking.setdefault(event.index, _PartialThinking())
            block.text.append(event.text)
            block.signature = event.signature or block.signature
            block.redacted_data = event.redacted_data or block.redacted_data
            order.block(BlockKind.THINKING, event.index)
        elif isinstance(event, Started):
            started = event
        elif isinstance(event, Switched) and event.policy is MidStreamPolicy.RESTART:
            text.clear()  # the new target starts over
            logprobs.clear()
            calls.clear()
            thinking.clear()
            order.clear()
        elif isinstance(event, Completed):
            if started is None:  # pragma: no cover - the engine always starts first
                raise LlmeshError(Reason.INTERNAL, "stream finished before it started")
            tool_calls = tuple(
                ToolCall(c.id, c.name, "".join(c.arguments) or "{}")
                for _, c in sorted(calls.items())
            )
            blocks = tuple(
                ThinkingBlock("".join(b.text), b.signature, b.redacted_data)
                for _, b in sorted(thinking.items())
            )
            refs = order.order(sorted(thinking), sorted(calls))
            return Reply(started, "".join(text), tool_calls, event, blocks, tuple(logprobs), refs)
    raise LlmeshError(Reason.STREAM_INTERRUPTED, "stream ended before its terminal event")
