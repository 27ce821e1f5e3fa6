"""Anthropic Messages replies, as pure functions: bodies, event streams, error bodies.

Streams are named SSE events whose ``event:`` equals the JSON ``type``;
``message_delta.usage`` carries cumulative totals. Errors are ``{"type": "error", "error":
{"type", "message"}, "request_id"}``; `fault_error` holds what Anthropic answers for each
injected fault.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmesh.services.emulator.cache import AnthropicCacheUsage
from llmesh.services.emulator.errors import ApiError
from llmesh.services.emulator.generation import ChatCall
from llmesh.services.emulator.replies import Finish, Reply, count_tokens, fragments
from llmesh.services.emulator.settings import FaultSpec
from llmesh.services.emulator.streaming import StreamPlan
from llmesh.services.emulator.thinking import pieces, sign

STOP_REASON = {
    Finish.END: "end_turn",
    Finish.STOP_SEQUENCE: "stop_sequence",
    Finish.LENGTH: "max_tokens",
    Finish.TOOL_CALLS: "tool_use",
}
"""Anthropic's name for each way a reply ends."""

CONTEXT_WINDOW = 200000


def usage(cache: AnthropicCacheUsage, output_tokens: int) -> dict[str, Any]:
    """A full ``usage`` object (non-streamed message, ``message_start``)."""
    return {
        "input_tokens": cache.input_tokens,
        "cache_creation_input_tokens": cache.cache_creation,
        "cache_read_input_tokens": cache.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache.creation_5m,
            "ephemeral_1h_input_tokens": cache.creation_1h,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def thinking_tokens(thought: str | None) -> int:
    """The output tokens a thinking text counts for (Anthropic bills thinking as output)."""
    return len(pieces(thought)) if thought else 0


def extra_tokens(after: tuple[str, str] | None) -> int:
    """The output tokens of the thinking and text interleaved after the tool calls."""
    return thinking_tokens(after[0]) + count_tokens(after[1]) if after else 0


def _content(
    reply: Reply, call_ids: list[str], thought: str | None, after: tuple[str, str] | None
) -> list[dict[str, Any]]:
    head: list[dict[str, Any]] = []
    if thought:
        head.append({"type": "thinking", "thinking": thought, "signature": sign(thought)})
    if reply.tool_calls:
        blocks = head + [
            {"type": "tool_use", "id": i, "name": c.name, "input": orjson.loads(c.arguments)}
            for c, i in zip(reply.tool_calls, call_ids, strict=True)
        ]
        if after:
            before = ",".join(b["type"] for b in blocks)
            signature = sign(after[0], before)
            blocks.append({"type": "thinking", "thinking": after[0], "signature": signature})
            blocks.append({"type": "text", "text": after[1]})
        return blocks
    return [*head, {"type": "text", "text": reply.text}]


def message_body(
    mid: str,
    call: ChatCall,
    reply: Reply,
    call_ids: list[str],
    cache: AnthropicCacheUsage,
    thought: str | None = None,
    after: tuple[str, str] | None = None,
) -> bytes:
    """A non-streamed ``message``; `after` is the thinking and text interleaved after the
    tool calls (interleaved thinking)."""
    return orjson.dumps(
        {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": call.conv.model,
            "content": _content(reply, call_ids, thought, after),
            "stop_reason": STOP_REASON[reply.finish],
            "stop_sequence": reply.stop_sequence,
            "usage": usage(
                cache, reply.output_tokens + thinking_tokens(thought) + extra_tokens(after)
            ),
        }
    )


def event(name: str, data: Any) -> bytes:
    """One named SSE event."""
    return b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(data))


def _thinking_events(thought: str, index: int = 0, before: str = "") -> bytes:
    """A whole ``thinking`` block at `index`: its deltas, then its signature."""
    block = {"type": "thinking", "thinking": "", "signature": ""}
    start = {"type": "content_block_start", "index": index, "content_block": block}
    out = event("content_block_start", start)
    deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces(thought)]
    deltas.append({"type": "signature_delta", "signature": sign(thought, before)})
    for delta in deltas:
        data = {"type": "content_block_delta", "index": index, "delta": delta}
        out += event("content_block_delta", data)
    return out + event("content_block_stop", {"type": "content_block_stop", "index": index})


def _after_events(after: tuple[str, str], index: int, before: str) -> bytes:
    """The thinking block and the text block interleaved after the tool calls."""
    out = _thinking_events(after[0], index, before)
    start = {
        "type": "content_block_start",
        "index": index + 1,
        "content_block": {"type": "text", "text": ""},
    }
    out += event("content_block_start", start)
    delta = {"type": "text_delta", "text": after[1]}
    out += event(
        "content_block_delta", {"type": "content_block_delta", "index": index + 1, "delta": delta}
    )
    return out + event("content_block_stop", {"type": "content_block_stop", "index": index + 1})


def stream_plan(
    mid: str,
    call: ChatCall,
    reply: Reply,
    call_ids: list[str],
    cache: AnthropicCacheUsage,
    request_id: str,
    thought: str | None = None,
    after: tuple[str, str] | None = None,
) -> StreamPlan:
    """The event stream: ``message_start``, blocks with their deltas, ``message_delta``, stop.

    With a `thought`, a ``thinking`` block (deltas, then ``signature_delta``) comes first and
    the answer's blocks follow from index 1; with `after` (interleaved thinking), a thinking
    block and a text block follow the tool calls.
    """
    first = 1 if thought else 0
    start: dict[str, Any] = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": call.conv.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage(cache, 1),
    }
    head = event("message_start", {"type": "message_start", "message": start})
    if thought:
        head += _thinking_events(thought)
    frames: list[bytes] = []
    if reply.tool_calls:
        for c, call_id in zip(reply.tool_calls, call_ids, strict=True):
            at = c.index + first
            block = {"type": "tool_use", "id": call_id, "name": c.name, "input": {}}
            opening = event(
                "content_block_start",
                {"type": "content_block_start", "index": at, "content_block": block},
            )
            if c.index:
                closing = event(
                    "content_block_stop", {"type": "content_block_stop", "index": at - 1}
                )
                opening = closing + opening
            pre = (
                b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
                b'"delta":{"type":"input_json_delta","partial_json":' % at
            )
            parts = [pre + orjson.dumps(f) + b"}}\n\n" for f in fragments(c.arguments)]
            if c.index == 0:
                head += opening + event("ping", {"type": "ping"})
            else:
                parts[0] = opening + parts[0]
            frames.extend(parts)
        last = len(reply.tool_calls) - 1 + first
    else:
        block = {"type": "text", "text": ""}
        head += event(
            "content_block_start",
            {"type": "content_block_start", "index": first, "content_block": block},
        )
        head += event("ping", {"type": "ping"})
        pre = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
            b'"delta":{"type":"text_delta","text":' % first
        )
        frames = [pre + orjson.dumps(p) + b"}}\n\n" for p in reply.pieces]
        last = first
    tail = event("content_block_stop", {"type": "content_block_stop", "index": last})
    if after and reply.tool_calls:
        before = ",".join(["thinking"] * first + ["tool_use"] * len(reply.tool_calls))
        tail += _after_events(after, last + 1, before)
    delta = {"stop_reason": STOP_REASON[reply.finish], "stop_sequence": reply.stop_sequence}
    final_usage = {
        "input_tokens": cache.input_tokens,
        "cache_creation_input_tokens": cache.cache_creation,
        "cache_read_input_tokens": cache.cache_read,
        "output_tokens": reply.output_tokens + thinking_tokens(thought) + extra_tokens(after),
    }
    tail += event("message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage})
    tail += event("message_stop", {"type": "message_stop"})
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    return StreamPlan(
        head=head,
        pieces=frames,
        tail=tail,
        error_frame=event("error", {**overloaded, "request_id": request_id}),
        malformed_frame=b"event: content_block_delta\ndata: {not json\n\n",
    )


def error_body(err: ApiError, request_id: str) -> bytes:
    """``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": err.type, "message": err.message},
            "request_id": request_id,
        }
    )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def context_error(window: int, tokens: int, completion: int | None = None) -> ApiError:
    """Anthropic's answer to a prompt of `tokens` over a `window`-token context, or to one
    that leaves less than the reply's `completion` (max_tokens) tokens."""
    if tokens <= window and completion is not None:
        return ApiError(
            400,
            f"input length and `max_tokens` exceed context limit: {tokens} + {completion} > "
            f"{window}, decrease input length or `max_tokens` and try again",
        )
    return ApiError(400, f"prompt is too long: {tokens} tokens > {window} maximum")


def fault_error(fault: FaultSpec, model: str, prompt_tokens: int) -> ApiError:
    """The error Anthropic answers for a status fault."""
    name = fault.fault
    if name == "rate_limit":
        return ApiError(
            429,
            "This request would exceed the rate limit for your organization of 50 requests per "
            "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can "
            "see the response headers for current usage. Please reduce the prompt length or the "
            "maximum tokens requested, or try again later. You may also contact sales at "
            "https://www.anthropic.com/contact-sales to discuss your options for a rate limit "
            "increase.",
            "rate_limit_error",
            headers={
                "retry-after": _seconds(fault.retry_after),
                "anthropic-ratelimit-requests-remaining": "0",
            },
        )
    if name == "quota":
        return ApiError(
            400,
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
            "Billing to upgrade or purchase credits.",
        )
    if name == "server_error":
        return ApiError(500, "Internal server error", "api_error")
    if name == "unavailable":
        return ApiError(503, "Service unavailable", "api_error")
    if name in ("overloaded", "stream_error"):
        return ApiError(529, "Overloaded", "overloaded_error", headers={"x-should-retry": "true"})
    if name == "auth":
        return ApiError(401, "invalid x-api-key", "authentication_error")
    if name == "not_found":
        return ApiError(404, f"model: {model}", "not_found_error")
    if name == "context_length":
        return context_error(CONTEXT_WINDOW, CONTEXT_WINDOW + prompt_tokens)
    return ApiError(400, "Invalid request: rejected by the emulator's bad_request fault.")
