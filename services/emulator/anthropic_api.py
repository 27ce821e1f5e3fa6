"""The Anthropic Messages endpoints: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

Headers like the real API: ``request-id`` and
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``
(reset as an RFC 3339 time). Any API key is accepted, and any model name.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from llmesh.services.emulator import anthropic_wire as wire
from llmesh.services.emulator.anthropic_parse import parse_messages
from llmesh.services.emulator.cache import AnthropicCacheUsage
from llmesh.services.emulator.errors import ApiError, new_request_id
from llmesh.services.emulator.generation import INVALID_JSON, ChatCall, Exchange, Planning, handle
from llmesh.services.emulator.replies import Reply, input_tokens, plan_reply, tool_call_id
from llmesh.services.emulator.settings import FaultSpec
from llmesh.services.emulator.streaming import send_stream, send_unary
from llmesh.services.emulator.thinking import INTERLEAVED_BETA, interleaved, thinking_text

LIMITS = {"requests": 4000, "tokens": 2000000, "input-tokens": 2000000, "output-tokens": 400000}
JSON = "application/json"
EVENT_STREAM = "text/event-stream; charset=utf-8"


def headers(
    request_id: str, content_type: str, input_used: int = 0, output_used: int = 0
) -> dict[str, str]:
    """The response headers Anthropic sends."""
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    used = {
        "requests": 1,
        "tokens": input_used + output_used,
        "input-tokens": input_used,
        "output-tokens": output_used,
    }
    out = {"Content-Type": content_type, "request-id": request_id}
    for kind, limit in LIMITS.items():
        out[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        out[f"anthropic-ratelimit-{kind}-remaining"] = str(max(0, limit - used[kind]))
        out[f"anthropic-ratelimit-{kind}-reset"] = reset
    return out


def betas(request_headers: Mapping[str, str]) -> list[str]:
    """The beta features the ``anthropic-beta`` header names (comma-separated)."""
    raw = request_headers.get("anthropic-beta", "")
    return [name.strip() for name in raw.split(",") if name.strip()]


@dataclass(frozen=True, slots=True)
class _Planned:
    """What one reply will say, decided once for a stream or a whole body."""

    reply: Reply
    call_ids: list[str]
    cache: AnthropicCacheUsage
    thought: str | None
    after: tuple[str, str] | None
    mid: str


class AnthropicDialect:
    """Anthropic's wire format plugged into the shared request flow."""

    def parse(self, body: Any) -> ChatCall:
        """Validate and parse the body."""
        return parse_messages(body)

    def render_error(self, err: ApiError, request_id: str, started: float) -> web.Response:
        """``{"type": "error", ...}`` with Anthropic's headers."""
        hdrs = headers(request_id, JSON)
        hdrs.update(err.headers)
        return web.Response(status=err.status, body=wire.error_body(err, request_id), headers=hdrs)

    def fault_error(
        self, fault: FaultSpec, call: ChatCall, prompt_tokens: int, request: web.Request
    ) -> ApiError:
        """Anthropic's error for a status fault."""
        return wire.fault_error(fault, call.conv.model, prompt_tokens)

    def context_error(self, window: int, prompt_tokens: int, completion: int | None) -> ApiError:
        """The provider's error for a prompt (and the reply asked for) over the window."""
        return wire.context_error(window, prompt_tokens, completion)

    def _plan(self, ex: Planning) -> _Planned:
        """The reply, its tool-call ids, cache usage and thinking."""
        call, controls = ex.call, ex.controls
        if controls.cached_tokens is not None:
            read = min(controls.cached_tokens, ex.prompt_tokens)
            cache = AnthropicCacheUsage(ex.prompt_tokens - read, read, 0, 0, 0)
        else:
            cache = ex.state.cache.anthropic(ex.units, ex.prompt_tokens)
        reply = plan_reply(call.conv)
        call_ids = [tool_call_id("toolu_", call.conv, c.index) for c in reply.tool_calls]
        thought = thinking_text(call.conv) if call.thinking_budget is not None else None
        after = None
        if thought and reply.tool_calls and INTERLEAVED_BETA in betas(ex.headers):
            after = interleaved([c.name for c in reply.tool_calls])
        mid = "msg_" + uuid.uuid4().hex[:24]
        return _Planned(reply, call_ids, cache, thought, after, mid)

    def unary_body(self, ex: Planning) -> bytes:
        """The non-streamed ``message`` body (a batch item's answer)."""
        p = self._plan(ex)
        return wire.message_body(p.mid, ex.call, p.reply, p.call_ids, p.cache, p.thought, p.after)

    async def respond(self, ex: Exchange) -> web.StreamResponse:
        """Reply with a ``message`` or an event stream."""
        call, controls = ex.call, ex.controls
        p = self._plan(ex.planning)
        output = call.conv.max_tokens or 0
        if call.stream:
            plan = wire.stream_plan(
                p.mid, call, p.reply, p.call_ids, p.cache, ex.request_id, p.thought, p.after
            )
            return await send_stream(
                ex.request,
                ex.tracker,
                lambda: headers(ex.request_id, EVENT_STREAM, ex.prompt_tokens, output),
                plan,
                controls,
            )

        def build() -> web.Response:
            body = wire.message_body(p.mid, call, p.reply, p.call_ids, p.cache, p.thought, p.after)
            hdrs = headers(ex.request_id, JSON, ex.prompt_tokens, output)
            return web.Response(body=body, headers=hdrs)

        return await send_unary(
            ex.request,
            ex.tracker,
            build,
            controls,
            p.reply.output_tokens,
            lambda: headers(ex.request_id, JSON, ex.prompt_tokens, output),
        )


DIALECT = AnthropicDialect()


async def messages(request: web.Request) -> web.StreamResponse:
    """``POST /v1/messages``."""
    return await handle(request, DIALECT)


async def count_tokens(request: web.Request) -> web.Response:
    """``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``, the whole prompt."""
    request_id = new_request_id()
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = INVALID_JSON
    try:
        call = parse_messages(body, count_only=True)
    except ApiError as err:
        return DIALECT.render_error(err, request_id, time.perf_counter())
    payload = orjson.dumps({"input_tokens": input_tokens(call.conv)})
    return web.Response(body=payload, headers=headers(request_id, JSON))


def add_routes(app: web.Application) -> None:
    """Register the Anthropic endpoints on `app`."""
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
