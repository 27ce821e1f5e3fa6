"""llmesh replies -> Anthropic Messages objects and stream events (pure functions).

A whole reply becomes a ``message`` object: its blocks in the order the target produced them
(``block_order``; by default thinking blocks, with signatures and redacted data
byte-for-byte, then the text, then the tool calls). A stream becomes Anthropic's event
sequence: ``message_start``, ``ping``, then per content block ``content_block_start``,
its deltas (``text_delta``, ``input_json_delta``, ``thinking_delta``, ``signature_delta``)
and ``content_block_stop``, then ``message_delta`` (stop reason and the whole usage) and
``message_stop``. ``stop_reason`` is the Anthropic target's own word when it gave one, else
the finish reason translated; ``stop_sequence`` is the one the provider said matched (Anthropic
names it; OpenAI does not, so through an OpenAI model it is null).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from llmesh.gateway.responses import sse_event
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.v1 import chat_pb2, orchestrator_pb2

__all__ = ["StreamEncoder", "message", "stop_reason", "usage_dict"]

_STOP_REASONS: dict[int, str] = {
    chat_pb2.FINISH_REASON_STOP: "end_turn",
    chat_pb2.FINISH_REASON_LENGTH: "max_tokens",
    chat_pb2.FINISH_REASON_TOOL_CALLS: "tool_use",
    chat_pb2.FINISH_REASON_CONTENT_FILTER: "refusal",
}
_ANTHROPIC_REASONS = frozenset(
    {"end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"}
)


def stop_reason(reason: chat_pb2.FinishReason, provider_reason: str) -> str:
    """Anthropic's ``stop_reason`` for a finish."""
    if provider_reason in _ANTHROPIC_REASONS:
        return provider_reason
    return _STOP_REASONS.get(reason, "end_turn")


def usage_dict(usage: chat_pb2.Usage) -> dict[str, int]:
    """Anthropic's usage object: input tokens exclude cache reads and writes, as there."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }


def _thinking(block: chat_pb2.ThinkingBlock) -> dict[str, Any]:
    if block.redacted_data:
        return {"type": "redacted_thinking", "data": block.redacted_data}
    return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}


def _input(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}


def _content(m: chat_pb2.Message) -> list[dict[str, Any]]:
    """A reply's blocks: in its ``block_order`` (text runs cut from ``content`` by their
    lengths), else thinking, text, tool calls."""
    thinking = [_thinking(b) for b in m.thinking]
    tools = [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": _input(c.arguments)}
        for c in m.tool_calls
    ]
    if not m.block_order:
        return [*thinking, *([{"type": "text", "text": m.content}] if m.content else []), *tools]
    whole = sum(1 for r in m.block_order if r.kind == chat_pb2.BLOCK_KIND_TEXT) == 1
    out: list[dict[str, Any]] = []
    at = 0
    for ref in m.block_order:
        if ref.kind == chat_pb2.BLOCK_KIND_THINKING:
            out.append(thinking[ref.index])
        elif ref.kind == chat_pb2.BLOCK_KIND_TOOL_CALL:
            out.append(tools[ref.index])
        else:
            length = len(m.content) - at if whole and not ref.text_length else ref.text_length
            out.append({"type": "text", "text": m.content[at : at + length]})
            at += length
    return out


def message(reply: orchestrator_pb2.ChatResponse, model: str) -> dict[str, Any]:
    """The ``message`` object of a whole reply."""
    content = _content(reply.message)
    reason = stop_reason(reply.finish_reason, reply.provider_finish_reason)
    return {
        "id": f"msg_{reply.request_id}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": reply.stop_sequence or None,
        "usage": usage_dict(reply.usage),
    }


def event(name: str, payload: dict[str, Any]) -> bytes:
    """One SSE event of Anthropic's stream (its ``type`` is its name)."""
    return sse_event(name, orjson.dumps({"type": name, **payload}))


PING = event("ping", {})


class StreamEncoder:
    """Turns `StreamChatResponse` events into Anthropic's SSE events.

    ``message_start`` waits for the first event after the start event, so it carries the
    input usage a provider reports before its first token; when the provider reports none
    that early (OpenAI-style targets), it carries `input_estimate`, the count the caller
    set. One content block is open at a time; a delta of another kind (or another tool
    call or thinking block) closes it and opens the next. `finished` becomes true at the
    finish event.
    """

    def __init__(self, model: str, fallback_id: str) -> None:
        self.model = model
        self.request_id = fallback_id
        self.finished = False
        self.input_estimate = 0
        """The input tokens ``message_start`` shows when no usage came before it."""
        self._opened = False
        self._reported = False
        self._usage = chat_pb2.Usage()
        self._block: tuple[str, int] | None = None
        """The open block's kind and its tool/thinking index."""
        self._index = -1
        """The open block's index among the message's content blocks."""

    def _start(self) -> bytes:
        self._opened = True
        start: dict[str, Any] = {
            "id": f"msg_{self.request_id}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_dict(
                self._usage if self._reported else chat_pb2.Usage(input_tokens=self.input_estimate)
            ),
        }
        return event("message_start", {"message": start}) + PING

    @property
    def started(self) -> bool:
        """True once ``message_start`` went out."""
        return self._opened

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        self._block = None
        return event("content_block_stop", {"index": self._index})

    def _open(self, kind: str, key: int, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._index += 1
        self._block = (kind, key)
        return out + event("content_block_start", {"index": self._index, "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return event("content_block_delta", {"index": self._index, "delta": delta})

    def encode(self, ev: orchestrator_pb2.StreamChatResponse) -> bytes:
        """The SSE bytes for one event (possibly empty)."""
        if self.finished:
            return b""
        kind = ev.WhichOneof("event")
        if kind == "start":
            self.request_id = ev.start.request_id or self.request_id
            return b""
        if kind == "usage":
            self._usage.CopyFrom(ev.usage)
            self._reported = True
        out = b"" if self._opened else self._start()
        if kind == "text_delta" and ev.text_delta.text:
            if self._block != ("text", 0):
                out += self._open("text", 0, {"type": "text", "text": ""})
            out += self._delta({"type": "text_delta", "text": ev.text_delta.text})
        elif kind == "reasoning_delta":
            out += self._reasoning(ev.reasoning_delta)
        elif kind == "tool_call_delta":
            out += self._tool(ev.tool_call_delta)
        elif kind == "switch" and ev.switch.policy == chat_pb2.MID_STREAM_POLICY_RESTART:
            raise LlmeshError(
                Reason.STREAM_INTERRUPTED,
                "the call restarted on another target, which a Messages stream cannot show",
            )
        elif kind == "finish":
            out += self._finish(ev.finish)
        return out

    def _reasoning(self, delta: orchestrator_pb2.ReasoningDelta) -> bytes:
        if delta.redacted_data:
            block = {"type": "redacted_thinking", "data": delta.redacted_data}
            return self._open("redacted_thinking", delta.index, block) + self._close()
        out = b""
        if self._block != ("thinking", delta.index):
            block = {"type": "thinking", "thinking": "", "signature": ""}
            out += self._open("thinking", delta.index, block)
        if delta.text:
            out += self._delta({"type": "thinking_delta", "thinking": delta.text})
        if delta.signature:
            out += self._delta({"type": "signature_delta", "signature": delta.signature})
        return out

    def _tool(self, delta: orchestrator_pb2.ToolCallDelta) -> bytes:
        out = b""
        if self._block != ("tool_use", delta.index):
            block = {"type": "tool_use", "id": delta.id, "name": delta.name, "input": {}}
            out += self._open("tool_use", delta.index, block)
        if delta.arguments_delta:
            out += self._delta({"type": "input_json_delta", "partial_json": delta.arguments_delta})
        return out

    def _finish(self, finish: orchestrator_pb2.FinishEvent) -> bytes:
        self.finished = True
        usage = finish.usage if finish.HasField("usage") else self._usage
        reason = stop_reason(finish.reason, finish.provider_reason)
        delta = {"stop_reason": reason, "stop_sequence": finish.stop_sequence or None}
        return (
            self._close()
            + event("message_delta", {"delta": delta, "usage": usage_dict(usage)})
            + event("message_stop", {})
        )
