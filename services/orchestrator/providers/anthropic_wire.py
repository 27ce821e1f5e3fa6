"""The Anthropic Messages wire format, writing side, as pure functions: the request body
and its per-request headers. Shared by the SDK adapter and any leaner transport carrying the
same bytes; the reading side (stream events, whole messages, errors) is `anthropic_stream`.

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
  byte-for-byte, first in its content or where its block order (`Message.order`,
  interleaved thinking) puts them; blocks without a signature (reasoning text from an
  OpenAI-compatible model) cannot be verified by Anthropic and are left out.
- ``thinking`` and ``redacted_thinking`` blocks stream as `ReasoningDelta`s; Anthropic
  counts thinking in ``output_tokens`` and reports no separate figure, so
  ``reasoning_tokens`` stays 0.
- ``service_tier`` ``auto`` and ``default`` become Anthropic's ``auto`` and ``standard_only``;
  its other values and the penalties and logit bias have no equivalent (`OPTIONS`).
- ``stream: true`` is added by the transport, not here; reading the reply (its SSE events,
  a whole message, errors) is `anthropic_stream`'s.
- Structured output (a request's ``response_format``) goes as Anthropic's native
  ``output_config.format`` or as a forced tool, along the path `anthropic_structured.
  output_path` chooses; on the tool path a parser built with ``structured_tool=`` turns
  that tool's input back into plain JSON text and its ``tool_use`` stop into STOP, so the
  caller sees a text reply, never the tool call.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from llmesh.services.common.errors import invalid
from llmesh.services.core.blocks import Block, ordered
from llmesh.services.core.chat import (
    CacheControl,
    ChatRequest,
    ContentPart,
    DocumentPart,
    ImagePart,
    Message,
    Role,
    ServiceTier,
    TextPart,
    ThinkingBlock,
    ToolCall,
    ToolChoiceMode,
)
from llmesh.services.orchestrator.providers.anthropic_structured import (
    STRUCTURED_TOOL as STRUCTURED_TOOL,
)
from llmesh.services.orchestrator.providers.anthropic_structured import (
    add_structured,
    output_path,
    parser_tool,
)
from llmesh.services.orchestrator.providers.prompt_cache import place_breakpoints

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` sent when the request sets none (Anthropic requires the field)."""

_TIERS = {ServiceTier.AUTO: "auto", ServiceTier.DEFAULT: "standard_only"}
OPTIONS = frozenset(f"service_tier:{tier.value}" for tier in _TIERS)
"""The optional features (`ChatRequest.options`) the Messages API honours."""

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


def _part_block(part: ContentPart, path: str) -> dict[str, Any] | None:
    """One content part as an Anthropic content block (None for empty text, which Anthropic
    rejects); an audio part is INVALID_REQUEST naming `path`, since Anthropic takes none."""
    if isinstance(part, TextPart):
        if not part.text:
            return None
        return _mark({"type": "text", "text": part.text}, part.cache_control)
    if isinstance(part, ImagePart):
        source: dict[str, Any] = (
            {"type": "url", "url": part.url}
            if part.url
            else {"type": "base64", "media_type": part.media_type, "data": _b64(part.data)}
        )
        return _mark({"type": "image", "source": source}, part.cache_control)
    if isinstance(part, DocumentPart):
        doc: dict[str, Any] = {
            "type": "document",
            "source": {"type": "url", "url": part.url}
            if part.url
            else {"type": "base64", "media_type": part.media_type, "data": _b64(part.data)},
        }
        if part.title:
            doc["title"] = part.title
        return _mark(doc, part.cache_control)
    raise invalid(f"{path}.input_audio", "Anthropic models do not accept audio")


def _part_blocks(m: Message, i: int) -> list[dict[str, Any]]:
    """A message's content parts as Anthropic content blocks, all checked before anything
    is sent."""
    blocks = (_part_block(part, f"messages[{i}].parts[{k}]") for k, part in enumerate(m.parts))
    return [b for b in blocks if b is not None]


def _assistant_block(k: int, block: Block, i: int) -> dict[str, Any] | None:
    """One block of an assistant turn; unsigned thinking (another provider's reasoning,
    which Anthropic cannot verify) and empty text are left out."""
    if isinstance(block, ThinkingBlock):
        if block.redacted_data:
            return {"type": "redacted_thinking", "data": block.redacted_data}
        if block.signature:
            return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
        return None
    if isinstance(block, ToolCall):
        use = {
            "type": "tool_use",
            "id": block.id,
            "name": block.name,
            "input": _tool_input(block.arguments, f"messages[{i}].tool_calls[{k}].arguments"),
        }
        return _mark(use, block.cache_control)
    return _part_block(block, f"messages[{i}].parts[{k}]")


def _blocks(m: Message, i: int) -> list[dict[str, Any]]:
    """The content blocks of one non-system message; an assistant turn's in its order."""
    if m.role is Role.TOOL:
        if not m.tool_call_id:
            raise invalid(f"messages[{i}].tool_call_id", "required for tool messages")
        # parts that leave no block (empty text) send the plain, empty content
        content: Any = (_part_blocks(m, i) if m.parts else None) or m.content
        result = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": content}
        if m.is_error:
            result["is_error"] = True
        return [_mark(result, m.cache_control)]
    if m.role is Role.ASSISTANT:
        blocks = (_assistant_block(k, b, i) for _, k, b in ordered(m))
        return [b for b in blocks if b is not None]
    if m.parts:
        return _part_blocks(m, i)
    return [_mark({"type": "text", "text": m.content}, m.cache_control)] if m.content else []


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


COUNT_PATH = "/v1/messages/count_tokens"
"""Anthropic's token counting endpoint (free; nothing is generated)."""
_COUNTED = ("model", "messages", "system", "tools", "tool_choice", "thinking")


def count_request(model: str, req: ChatRequest) -> dict[str, Any]:
    """The body for `COUNT_PATH`: what `to_provider_request` sends that counts as input
    (messages, system, tools, tool choice, thinking); raises as it does."""
    body = to_provider_request(model, req)
    return {k: body[k] for k in _COUNTED if k in body}
