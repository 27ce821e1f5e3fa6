"""The Anthropic Messages wire format, reading side, as pure functions: each streamed SSE
event (its JSON, as a dict) into provider events, a whole message into the same events, and
errors classified by Anthropic's error ``type`` rather than the transport status (an
``overloaded_error`` can arrive as an ``error`` event inside a 200 response).

The writing side (the request body) is `anthropic_wire`; both are shared by the SDK adapter
and the lean transport.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import FinishReason
from llmesh.services.core.events import (
    Finish,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.providers.errors import retry_after_from_headers

__all__ = ["AnthropicStreamParser", "classify_error_body", "classify_error_type", "from_message"]

_FINISH = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "pause_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}


# ---------------------------------------------------------------------------------------
# Errors


def classify_error_type(
    error_type: str,
    message: str,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> LlmeshError:
    """Classify an Anthropic error by its ``type``; the HTTP status only breaks ties.

    `status` is None for an ``error`` event inside a started stream. The message is
    Anthropic's own and carries no credentials.
    """
    retry = retry_after_from_headers(headers)
    meta = {"upstream_error_type": error_type} if error_type else {}
    lowered = message.lower()

    def err(reason: Reason, text: str, retry_after: float | None = None) -> LlmeshError:
        return LlmeshError(reason, text, retry_after, metadata=dict(meta))

    if error_type == "invalid_request_error":
        if "prompt is too long" in lowered or "context limit" in lowered:
            return err(Reason.CONTEXT_TOO_LONG, f"upstream: {message}")
        if "credit balance" in lowered:
            return err(Reason.QUOTA_EXHAUSTED, f"upstream quota exhausted: {message}")
        return err(Reason.UPSTREAM_INVALID_REQUEST, f"upstream refused: {message}")
    if error_type in ("authentication_error", "permission_error"):
        return err(Reason.UPSTREAM_AUTH_FAILED, f"upstream rejected the credentials: {message}")
    if error_type == "billing_error":
        return err(Reason.QUOTA_EXHAUSTED, f"upstream quota exhausted: {message}")
    if error_type == "not_found_error":
        return err(Reason.MODEL_NOT_FOUND, f"upstream: {message}")
    if error_type == "request_too_large":
        return err(Reason.CONTEXT_TOO_LONG, f"upstream: {message}")
    if error_type == "rate_limit_error":
        return err(Reason.RATE_LIMITED, f"upstream rate limit: {message}", retry)
    if error_type == "overloaded_error":
        return err(Reason.OVERLOADED, f"upstream overloaded: {message}", retry)
    if error_type == "api_error":
        return err(Reason.UPSTREAM_UNAVAILABLE, f"upstream error: {message}", retry)
    if error_type == "timeout_error":
        return err(Reason.UPSTREAM_TIMEOUT, f"upstream timed out: {message}", retry)
    # an unknown type: fall back on the transport status
    if status == 529:
        return err(Reason.OVERLOADED, f"upstream overloaded: {message}", retry)
    if status == 429:
        return err(Reason.RATE_LIMITED, f"upstream rate limit: {message}", retry)
    if status in (401, 403):
        return err(Reason.UPSTREAM_AUTH_FAILED, f"upstream rejected the credentials: {message}")
    if status == 413:
        return err(Reason.CONTEXT_TOO_LONG, f"upstream: {message}")
    if status in (408, 504):
        return err(Reason.UPSTREAM_TIMEOUT, f"upstream timed out: {message}", retry)
    if status is not None and 400 <= status < 500:
        return err(Reason.UPSTREAM_INVALID_REQUEST, f"upstream refused: {message}")
    return err(Reason.UPSTREAM_UNAVAILABLE, f"upstream error: {message}", retry)


def classify_error_body(
    body: object, *, status: int | None, headers: Mapping[str, str] | None
) -> LlmeshError:
    """Classify an error response body (``{"type": "error", "error": {type, message}}``).

    Tolerates a bare error object, a non-JSON text body and no body at all.
    """
    error: object = body
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]
    if isinstance(error, Mapping):
        etype = str(error.get("type") or "")
        message = str(error.get("message") or "upstream error")
    else:
        etype = ""
        message = str(error)[:500] if error else f"upstream answered HTTP {status}"
    return classify_error_type(etype, message, status, headers)


# ---------------------------------------------------------------------------------------
# Responses


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _kind(event: object) -> str:
    kind = event.get("type") if isinstance(event, Mapping) else None
    return repr(kind)[:40] if kind is not None else "untyped"


class AnthropicStreamParser:
    """Turns streamed Messages events (as dicts) into provider events.

    Tool calls are numbered from 0 among ``tool_use`` blocks only. Usage from
    ``message_start`` is kept and overwritten field by field by ``message_delta`` (whose
    usage is cumulative). `Finish` is emitted on ``message_stop``; a stream that ends
    before it was cut, which `ensure_complete` reports.

    With `structured_tool` (the request asked for JSON, see `to_provider_request`), that
    tool's input is relayed as text deltas, other text is dropped, and its ``tool_use``
    stop finishes as STOP.
    """

    __slots__ = (
        "_json_blocks",
        "_structured",
        "_thinking",
        "_tools",
        "finished",
        "response_id",
        "response_model",
        "stop_reason",
        "stop_sequence",
        "usage",
    )

    def __init__(self, structured_tool: str | None = None) -> None:
        self.usage = Usage()
        self.stop_reason: str | None = None
        self.stop_sequence = ""
        """The stop sequence ``message_delta`` named as the reason the reply ended."""
        self.finished = False
        self.response_id = ""
        """The reply's ``id`` and ``model``, from ``message_start``."""
        self.response_model = ""
        self._tools: dict[int, int] = {}
        """Tool index by content block index."""
        self._thinking: dict[int, int] = {}
        """Thinking-block index by content block index."""
        self._structured = structured_tool
        self._json_blocks: set[int] = set()
        """Content block indexes of the structured-output tool."""

    def _update_usage(self, raw: object) -> bool:
        if not isinstance(raw, Mapping):
            return False
        u = self.usage
        if raw.get("input_tokens") is not None:
            u.input_tokens = _int(raw["input_tokens"])
        if raw.get("output_tokens") is not None:
            u.output_tokens = _int(raw["output_tokens"])
        if raw.get("cache_read_input_tokens") is not None:
            u.cache_read_tokens = _int(raw["cache_read_input_tokens"])
        if raw.get("cache_creation_input_tokens") is not None:
            u.cache_write_tokens = _int(raw["cache_creation_input_tokens"])
        return True

    def _snapshot(self) -> Usage:
        u = self.usage
        return Usage(u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens)

    def feed(self, event: Mapping[str, Any]) -> list[ProviderEvent]:
        """Events for one SSE event; raises `LlmeshError` for an ``error`` event.

        An event of the wrong shape (a string where an object belongs, ...) raises
        MALFORMED_RESPONSE.
        """
        try:
            return self._feed(event)
        except (AttributeError, LookupError, TypeError, ValueError) as exc:
            raise LlmeshError(
                Reason.MALFORMED_RESPONSE, f"upstream sent a malformed {_kind(event)} event"
            ) from exc

    def _feed(self, event: Mapping[str, Any]) -> list[ProviderEvent]:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dkind = delta.get("type")
            if dkind == "input_json_delta" and _int(event.get("index")) in self._json_blocks:
                partial = delta.get("partial_json")
                if partial and not isinstance(partial, str):
                    raise TypeError("partial_json is not a string")
                return [TextDelta(partial)] if partial else []
            if dkind == "text_delta":
                if self._structured:
                    return []  # only the tool's input is the reply
                text = delta["text"]
                if not isinstance(text, str):
                    raise TypeError("text is not a string")
                return [TextDelta(text)] if text else []
            if dkind == "input_json_delta":
                tool = self._tools.get(_int(event.get("index")))
                partial = delta.get("partial_json")
                if tool is None or not partial:
                    return []
                if not isinstance(partial, str):
                    raise TypeError("partial_json is not a string")
                return [ToolCallDelta(tool, arguments_delta=partial)]
            if dkind == "thinking_delta":
                index = self._thinking_index(event)
                return [ReasoningDelta(_str(delta["thinking"]), index)] if delta["thinking"] else []
            if dkind == "signature_delta":
                index = self._thinking_index(event)
                return [ReasoningDelta("", index, signature=_str(delta["signature"]))]
            return []  # citations_delta, future kinds
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            btype = block.get("type")
            if self._structured and btype == "tool_use" and block.get("name") == self._structured:
                self._json_blocks.add(_int(event.get("index")))
                args = block.get("input")
                return [TextDelta(json.dumps(args))] if args else []
            if btype == "text":
                if self._structured:
                    return []
                text = block.get("text")
                if text and not isinstance(text, str):
                    raise TypeError("text is not a string")
                return [TextDelta(text)] if text else []
            if btype == "tool_use":
                tool = len(self._tools)
                self._tools[_int(event.get("index"))] = tool
                args = block.get("input")
                return [
                    ToolCallDelta(
                        tool,
                        id=str(block.get("id") or ""),
                        name=str(block.get("name") or ""),
                        arguments_delta=json.dumps(args) if args else "",
                    )
                ]
            if btype == "thinking":
                index = self._thinking_index(event)
                out: list[ProviderEvent] = []
                if block.get("thinking"):
                    out.append(ReasoningDelta(_str(block["thinking"]), index))
                if block.get("signature"):
                    out.append(ReasoningDelta("", index, signature=_str(block["signature"])))
                return out
            if btype == "redacted_thinking":
                index = self._thinking_index(event)
                return [ReasoningDelta("", index, redacted_data=_str(block["data"]))]
            return []  # server tool blocks and future kinds
        if kind == "message_start":
            message = event.get("message") or {}
            self.response_id = str(message.get("id") or "")
            self.response_model = str(message.get("model") or "")
            if self._update_usage(message.get("usage")):
                return [UsageUpdate(self._snapshot())]
            return []
        if kind == "message_delta":
            delta = event.get("delta") or {}
            if delta.get("stop_reason"):
                self.stop_reason = str(delta["stop_reason"])
            if isinstance(delta.get("stop_sequence"), str):
                self.stop_sequence = delta["stop_sequence"]
            if self._update_usage(event.get("usage")):
                return [UsageUpdate(self._snapshot())]
            return []
        if kind == "message_stop":
            if self.finished:
                return []
            self.finished = True
            reason = self.stop_reason or ""
            finish = _FINISH.get(reason, FinishReason.UNSPECIFIED)
            if finish is FinishReason.TOOL_CALLS and self._json_blocks and not self._tools:
                finish = FinishReason.STOP  # the structured reply is text to the caller
            return [
                Finish(
                    finish,
                    reason,
                    self._snapshot(),
                    self.response_id,
                    self.response_model,
                    self.stop_sequence,
                )
            ]
        if kind == "error":
            raise classify_error_body(event, status=None, headers=None)
        return []  # content_block_stop, ping and event types added after this was written

    def _thinking_index(self, event: Mapping[str, Any]) -> int:
        """The thinking-block index of the event's content block, numbered on first sight."""
        return self._thinking.setdefault(_int(event.get("index")), len(self._thinking))

    def ensure_complete(self) -> None:
        """Raise STREAM_INTERRUPTED unless ``message_stop`` has been seen."""
        if not self.finished:
            raise LlmeshError(
                Reason.STREAM_INTERRUPTED, "upstream stream ended before message_stop"
            )


def from_message(
    msg: Mapping[str, Any], *, structured_tool: str | None = None
) -> list[ProviderEvent]:
    """Events equivalent to a non-streamed ``message`` response (or an error body)."""
    if msg.get("type") == "error":
        raise classify_error_body(msg, status=None, headers=None)
    parser = AnthropicStreamParser(structured_tool)
    usage = msg.get("usage") or {}
    events = parser.feed({"type": "message_start", "message": {"usage": usage}})
    for index, block in enumerate(msg.get("content") or ()):
        if block.get("type") == "tool_use":
            start = {**block, "input": {}}
            events += parser.feed(
                {"type": "content_block_start", "index": index, "content_block": start}
            )
            args = block.get("input")
            if args:
                delta = {"type": "input_json_delta", "partial_json": json.dumps(args)}
                events += parser.feed(
                    {"type": "content_block_delta", "index": index, "delta": delta}
                )
        else:
            events += parser.feed(
                {"type": "content_block_start", "index": index, "content_block": block}
            )
    ending = {"stop_reason": msg.get("stop_reason"), "stop_sequence": msg.get("stop_sequence")}
    events += parser.feed({"type": "message_delta", "delta": ending, "usage": None})
    events += parser.feed({"type": "message_stop"})
    return events
