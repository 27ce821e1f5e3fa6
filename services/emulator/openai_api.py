"""The OpenAI Chat Completions endpoint: ``POST /v1/chat/completions``.

Headers like the real API: ``x-request-id``, ``openai-processing-ms``, ``openai-version`` and
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; streams are
``text/event-stream; charset=utf-8``. Any API key is accepted, and any model name.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from llmesh.services.emulator import openai_wire as wire
from llmesh.services.emulator.errors import ApiError
from llmesh.services.emulator.generation import ChatCall, Exchange, Planning, handle
from llmesh.services.emulator.openai_parse import parse_chat
from llmesh.services.emulator.replies import Reply, plan_reply, tool_call_id
from llmesh.services.emulator.settings import FaultSpec
from llmesh.services.emulator.streaming import send_stream, send_unary
from llmesh.services.emulator.thinking import (
    reasons_hidden,
    reasons_visibly,
    thinking_text,
    token_count,
)

REQUEST_LIMIT = 10000
TOKEN_LIMIT = 30000000
JSON = "application/json"
EVENT_STREAM = "text/event-stream; charset=utf-8"


def headers(
    request_id: str, elapsed_ms: int, prompt_tokens: int, content_type: str
) -> dict[str, str]:
    """The response headers OpenAI sends."""
    return {
        "Content-Type": content_type,
        "x-request-id": request_id,
        "openai-processing-ms": str(elapsed_ms),
        "openai-version": "2020-10-01",
        "x-ratelimit-limit-requests": str(REQUEST_LIMIT),
        "x-ratelimit-limit-tokens": str(TOKEN_LIMIT),
        "x-ratelimit-remaining-requests": str(REQUEST_LIMIT - 1),
        "x-ratelimit-remaining-tokens": str(max(0, TOKEN_LIMIT - prompt_tokens)),
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-reset-tokens": "0s",
    }


@dataclass(frozen=True, slots=True)
class _Planned:
    """What one reply will say, decided once for a stream or a whole body."""

    reply: Reply
    call_ids: list[str]
    use: dict[str, Any]
    shown: str | None
    cid: str
    created: int


class OpenAIDialect:
    """OpenAI's wire format plugged into the shared request flow."""

    def parse(self, body: Any) -> ChatCall:
        """Validate and parse the body."""
        return parse_chat(body)

    def render_error(self, err: ApiError, request_id: str, started: float) -> web.Response:
        """``{"error": {...}}`` with OpenAI's headers."""
        elapsed = int((time.perf_counter() - started) * 1000)
        hdrs = headers(request_id, elapsed, 0, JSON)
        hdrs.update(err.headers)
        return web.Response(status=err.status, body=wire.error_body(err), headers=hdrs)

    def fault_error(
        self, fault: FaultSpec, call: ChatCall, prompt_tokens: int, request: web.Request
    ) -> ApiError:
        """OpenAI's error for a status fault."""
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ").strip()
        return wire.fault_error(fault, call.conv.model, prompt_tokens, key)

    def context_error(self, window: int, prompt_tokens: int, completion: int | None) -> ApiError:
        """The provider's error for a prompt (and the reply asked for) over the window."""
        return wire.context_error(window, prompt_tokens, completion)

    def _plan(self, ex: Planning) -> _Planned:
        """The reply, its tool-call ids, usage and visible reasoning."""
        call, controls = ex.call, ex.controls
        if controls.cached_tokens is not None:
            cached = min(controls.cached_tokens, ex.prompt_tokens)
        else:
            cached = ex.state.cache.openai(ex.units, ex.prompt_tokens)
        reply = plan_reply(call.conv)
        call_ids = [tool_call_id("call_", call.conv, c.index) for c in reply.tool_calls]
        model = call.conv.model
        visible = reasons_visibly(model)
        thought = thinking_text(call.conv) if visible or reasons_hidden(model) else None
        reasoning = token_count(thought) * call.n if thought else 0
        use = wire.usage(
            ex.prompt_tokens, reply.output_tokens * call.n + reasoning, cached, reasoning
        )
        shown = thought if visible else None
        cid = "chatcmpl-" + uuid.uuid4().hex[:29]
        return _Planned(reply, call_ids, use, shown, cid, int(time.time()))

    def unary_body(self, ex: Planning) -> bytes:
        """The non-streamed ``chat.completion`` body (a batch item's answer)."""
        p = self._plan(ex)
        return wire.completion_body(p.cid, p.created, ex.call, p.reply, p.call_ids, p.use, p.shown)

    async def respond(self, ex: Exchange) -> web.StreamResponse:
        """Reply with a ``chat.completion`` or a chunk stream."""
        call, controls = ex.call, ex.controls
        p = self._plan(ex.planning)
        if call.stream:
            plan = wire.stream_plan(p.cid, p.created, call, p.reply, p.call_ids, p.use, p.shown)
            return await send_stream(
                ex.request,
                ex.tracker,
                lambda: headers(ex.request_id, ex.elapsed_ms(), ex.prompt_tokens, EVENT_STREAM),
                plan,
                controls,
            )

        def build() -> web.Response:
            body = wire.completion_body(p.cid, p.created, call, p.reply, p.call_ids, p.use, p.shown)
            hdrs = headers(ex.request_id, ex.elapsed_ms(), ex.prompt_tokens, JSON)
            return web.Response(body=body, headers=hdrs)

        return await send_unary(
            ex.request,
            ex.tracker,
            build,
            controls,
            p.reply.output_tokens,
            lambda: headers(ex.request_id, ex.elapsed_ms(), ex.prompt_tokens, JSON),
        )


DIALECT = OpenAIDialect()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``."""
    return await handle(request, DIALECT)


def add_routes(app: web.Application) -> None:
    """Register the OpenAI endpoints on `app`."""
    app.router.add_post("/v1/chat/completions", chat_completions)
