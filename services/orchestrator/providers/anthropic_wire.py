"""The Anthropic Messages wire format, as pure functions.

Shared by the SDK adapter and any leaner transport carrying the same bytes: building the
request body, turning each streamed SSE event (its JSON, as a dict) into provider events,
and classifying errors by Anthropic's error ``type`` rather than the transport status (an
``overloaded_error`` can arrive as an ``error`` event inside a 200 response).

Mapping choices worth knowing:

- ``max_tokens`` is required by Anthropic; requests without one get `DEFAULT_MAX_TOKENS`.
- ``seed`` has no Anthropic equivalent and is ignored; message ``name`` likewise.
- The call's ``user`` label goes as ``metadata.user_id``.
- Tool results travel as ``tool_result`` blocks in a ``user`` message, and consecutive
  messages of one role are merged, since Anthropic requires user/assistant alternation.
- Prompt-cache breakpoints the caller placed (``cache_control`` on tools, system and message
  blocks) go where they were placed; `prompt_cache.place_breakpoints` adds automatic ones
  beside them, following the request's ``prompt_cache`` mode and ``prompt_cache_ttl``.
- A tool message's ``is_error`` becomes its ``tool_result`` block's ``is_error``.
- Extended thinking (``thinking_budget_tokens``) sends ``thinking: {type: enabled,
  budget_tokens}``; Anthropic then refuses ``temperature`` and ``top_p`` other than their
  defaults, so both are left out, and ``max_tokens`` must exceed the budget: an unset one
  becomes the budget plus `DEFAULT_MAX_TOKENS`. An assistant turn's thinking blocks go back
  first in its content, byte-for-byte; blocks without a signature (reasoning text from an
  OpenAI-compatible model) cannot be verified by Anthropic and are left out.
- ``thinking`` and ``redacted_thinking`` blocks stream as `ReasoningDelta`s; Anthropic
  counts thinking in ``output_tokens`` and reports no separate figure, so
  ``reasoning_tokens`` stays 0.
- ``service_tier`` ``auto`` and ``default`` become Anthropic's ``auto`` and ``standard_only``;
  its other values and the penalties and logit bias have no equivalent (`OPTIONS`).
- ``stream: true`` is added by the transport, not here.
- Structured output (a request's ``response_format``) goes as Anthropic's native
  ``output_config.format`` or as a forced tool, along the path `anthropic_structured.
  output_path` chooses; on the tool path a parser built with ``structured_tool=`` turns
  that tool's input back into plain JSON text and its ``tool_use`` stop into STOP, so the
  caller sees a text reply, never the tool call.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason, invalid
from llmesh.services.core.chat import (
    CacheControl,
    ChatRequest,
    DocumentPart,
    FinishReason,
    ImagePart,
    Message,
    Role,
    ServiceTier,
    TextPart,
    ToolChoiceMode,
)
from llmesh.services.core.events import (
    Finish,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.providers.anthropic_structured import (
    STRUCTURED_TOOL as STRUCTURED_TOOL,
)
from llmesh.services.orchestrator.providers.anthropic_structured import (
    add_structured,
    output_path,
    parser_tool,
)
from llmesh.services.orchestrator.providers.errors import retry_after_from_headers
from llmesh.services.orchestrator.providers.prompt_cache import place_breakpoints

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` sent when the request sets none (Anthropic requires the field)."""

_TIERS = {ServiceTier.AUTO: "auto", ServiceTier.DEFAULT: "standard_only"}
OPTIONS = frozenset(f"service_tier:{tier.value}" for tier in _TIERS)
"""The optional features (`ChatRequest.options`) the Messages API honours."""

_FINISH = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "pause_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}

_TOOL_CHOICE = {
    ToolChoiceMode.AUTO: "auto",
    ToolChoiceMode.REQUIRED: "any",
    ToolChoiceMode.NONE: "none",
    ToolChoiceMode.TOOL: "tool",
}


# ---------------------------------------------------------------------------------------
# Requests


def _tool_input(arguments: str, path: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except ValueError as exc:
        raise invalid(path, f"tool call arguments are not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise invalid(path, "tool call arguments must be a JSON object")
    return parsed


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _mark(block: dict[str, Any], control: CacheControl | None) -> dict[str, Any]:
    """`block` with the caller's breakpoint, if one was placed on it."""
    if control is not None:
        block["cache_control"] = (
            {"type": "ephemeral", "ttl": control.ttl} if control.ttl else {"type": "ephemeral"}
        )
    return block


def _part_blocks(m: Message, i: int) -> list[dict[str, Any]]:
    """A message's content parts as Anthropic content blocks.

    Anthropic takes no audio: an audio part is INVALID_REQUEST naming it, raised before
    anything is sent.
    """
    blocks: list[dict[str, Any]] = []
    for k, part in enumerate(m.parts):
        if isinstance(part, TextPart):
            if part.text:  # Anthropic rejects empty text blocks
                blocks.append(_mark({"type": "text", "text": part.text}, part.cache_control))
        elif isinstance(part, ImagePart):
            source: dict[str, Any] = (
                {"type": "url", "url": part.url}
                if part.url
                else {"type": "base64", "media_type": part.media_type, "data": _b64(part.data)}
            )
            blocks.append(_mark({"type": "image", "source": source}, part.cache_control))
        elif isinstance(part, DocumentPart):
            doc: dict[str, Any] = {
                "type": "document",
                "source": {"type": "url", "url": part.url}
                if part.url
                else {"type": "base64", "media_type": part.media_type, "data": _b64(part.data)},
            }
            if part.title:
                doc["title"] = part.title
            blocks.append(_mark(doc, part.cache_control))
        else:
            raise invalid(
                f"messages[{i}].parts[{k}].input_audio", "Anthropic models do not accept audio"
            )
    return blocks


def _blocks(m: Message, i: int) -> list[dict[str, Any]]:
    """The content blocks of one non-system message."""
    if m.role is Role.TOOL:
        if not m.tool_call_id:
            raise invalid(f"messages[{i}].tool_call_id", "required for tool messages")
        content: Any = _part_blocks(m, i) if m.parts else m.content
        result = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": content}
        if m.is_error:
            result["is_error"] = True
        return [_mark(result, m.cache_control)]
    blocks: list[dict[str, Any]] = []
    if m.role is Role.ASSISTANT:
        for b in m.thinking:
            if b.redacted_data:
                blocks.append({"type": "redacted_thinking", "data": b.redacted_data})
            elif b.signature:
                blocks.append(
                    {"type": "thinking", "thinking": b.thinking, "signature": b.signature}
                )
    if m.parts:
        blocks.extend(_part_blocks(m, i))
    elif m.content:
        blocks.append(_mark({"type": "text", "text": m.content}, m.cache_control))
    if m.role is Role.ASSISTANT:
        for j, call in enumerate(m.tool_calls):
            use = {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _tool_input(call.arguments, f"messages[{i}].tool_calls[{j}].arguments"),
            }
            blocks.append(_mark(use, call.cache_control))
    return blocks


def _messages(messages: tuple[Message, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating messages) from the domain conversation."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if m.role is Role.SYSTEM:
            if m.parts:
                for k, part in enumerate(m.parts):
                    if not isinstance(part, TextPart):
                        raise invalid(
                            f"messages[{i}].parts[{k}]", "a system message takes text parts only"
                        )
                    if part.text:
                        system.append(
                            _mark({"type": "text", "text": part.text}, part.cache_control)
                        )
            elif m.content:
                system.append(_mark({"type": "text", "text": m.content}, m.cache_control))
            continue
        blocks = _blocks(m, i)
        if not blocks:
            continue  # Anthropic rejects empty content; an empty turn carries nothing
        role = "assistant" if m.role is Role.ASSISTANT else "user"
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for msg in out:
        if msg["role"] == "user" and len(msg["content"]) > 1:
            # tool_result blocks must open a user message; a stable sort keeps their order
            msg["content"].sort(key=lambda b: b["type"] != "tool_result")
    return system, out


BETA_HEADER = "anthropic-beta"
"""The header naming the beta features a request enables."""


def request_headers(req: ChatRequest) -> dict[str, str]:
    """Per-request headers: ``anthropic-beta`` when the request enables beta features."""
    return {BETA_HEADER: ",".join(req.anthropic_beta)} if req.anthropic_beta else {}


def structured_tool(req: ChatRequest, model: str = "", mode: str = "tool") -> str | None:
    """The forced tool the stream parser unwraps for `req` to `model` under the provider's
    ``structured_output`` `mode`, or None (plain text, or native structured output)."""
    return parser_tool(output_path(mode, model, req))


def to_provider_request(
    model: str, req: ChatRequest, *, structured_output: str = "tool"
) -> dict[str, Any]:
    """The JSON body (without ``stream``) for ``POST /v1/messages``, for `model`, the
    provider's own model id; `structured_output` is the provider's setting of that name
    (``auto``, ``native`` or ``tool``), which with the model decides how a
    ``response_format`` is sent.

    Raises `LlmeshError` INVALID_REQUEST for tool call arguments that are not a JSON object,
    tool messages without a ``tool_call_id``, a TOOL choice without a name and an unknown
    prompt cache mode or ttl.
    """
    system, messages = _messages(req.messages)
    budget = req.thinking_budget_tokens
    max_tokens = req.max_tokens
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS if budget is None else budget + DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    if budget is not None:
        if max_tokens <= budget:
            raise invalid("thinking_budget_tokens", "must be below max_tokens")
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if system:
        body["system"] = system
    if req.tools:
        tools: list[dict[str, Any]] = []
        for t in req.tools:
            tool: dict[str, Any] = {"name": t.name}
            if t.description:
                tool["description"] = t.description
            tool["input_schema"] = dict(t.parameters) or {"type": "object", "properties": {}}
            tools.append(_mark(tool, t.cache_control))
        body["tools"] = tools
        kind = _TOOL_CHOICE.get(req.tool_choice)
        if kind is not None:
            choice: dict[str, Any] = {"type": kind}
            if req.tool_choice is ToolChoiceMode.TOOL:
                if not req.tool_choice_name:
                    raise invalid("tool_choice_name", "required when tool_choice is TOOL")
                choice["name"] = req.tool_choice_name
            body["tool_choice"] = choice
        if req.parallel_tool_calls is False and kind != "none":
            # Anthropic's switch lives in tool_choice; "auto" is its default choice
            body.setdefault("tool_choice", {"type": "auto"})["disable_parallel_tool_use"] = True
    if req.temperature is not None and budget is None:
        body["temperature"] = req.temperature
    if req.top_p is not None and budget is None:
        body["top_p"] = req.top_p
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.service_tier in _TIERS:
        body["service_tier"] = _TIERS[req.service_tier]
    if req.user:
        body["metadata"] = {"user_id": req.user}
    path = output_path(structured_output, model, req)
    if path is not None:
        add_structured(req, body, path)
    try:
        return place_breakpoints(body, mode=req.prompt_cache, ttl=req.prompt_cache_ttl)
    except ValueError as exc:
        raise invalid("cache", str(exc)) from None


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
        "usage",
    )

    def __init__(self, structured_tool: str | None = None) -> None:
        self.usage = Usage()
        self.stop_reason: str | None = None
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
            return [Finish(finish, reason, self._snapshot(), self.response_id, self.response_model)]
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
    events += parser.feed(
        {"type": "message_delta", "delta": {"stop_reason": msg.get("stop_reason")}, "usage": None}
    )
    events += parser.feed({"type": "message_stop"})
    return events
