"""The Anthropic Messages API: ``POST /v1/messages`` (plain and streamed),
``POST /v1/messages/count_tokens``, and the Anthropic shape of ``GET /v1/models``.

The official ``anthropic`` SDK works against ``http://<gateway>`` unchanged. Its
``x-api-key`` is the llmesh key, forwarded to the orchestrator as ``authorization: Bearer``
(a request's own ``authorization`` header wins). Calls go through the orchestrator's Chat and
StreamChat RPCs like ``/v1/chat/completions``, so routing, fallbacks, caching, budgets, rate
limits, the ledger and the attempt trail apply alike. A stream that fails before its first
event is answered as a plain HTTP error; one that fails later (or ends without a finish)
gets an ``event: error`` and no ``message_stop``: a cut stream never looks finished.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmesh.gateway.anthropic.errors import error_event, error_response
from llmesh.gateway.anthropic.render import PING, StreamEncoder, message
from llmesh.gateway.anthropic.request import (
    MessagesRequest,
    parse_count_request,
    parse_messages_request,
)
from llmesh.gateway.inputs import CallOptions, call_options, read_json_object
from llmesh.gateway.responses import OrjsonResponse, Part, UpstreamResponse
from llmesh.gateway.upstream import Upstream, call_headers, trail_headers, upstream_of
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.v1 import chat_pb2, orchestrator_pb2, processor_pb2

__all__ = [
    "BETA_HEADER",
    "VERSION_HEADER",
    "auth_headers",
    "beta_names",
    "model_list",
    "model_object",
    "routes",
]

VERSION_HEADER = "anthropic-version"
"""Sent by every Anthropic client; ``GET /v1/models`` answers in Anthropic's shape with it."""
BETA_HEADER = "anthropic-beta"
"""Anthropic's beta opt-ins (comma-separated), sent on as `ChatInput.anthropic_beta`: the
orchestrator refuses those the call's route does not allow."""
REQUEST_ID_HEADER = "request-id"
"""Anthropic's header naming a call (the SDK's ``_request_id``): llmesh's request id."""
PING_INTERVAL = 10.0
"""Seconds of upstream silence after which a stream sends a ``ping`` to keep it open."""
COUNT_TIMEOUT = 2.0
"""Seconds a stream's ``message_start`` waits at most for the processor's input count."""
ESTIMATE_ON = frozenset(
    {
        grpc.StatusCode.UNIMPLEMENTED,  # an orchestrator without CountInputTokens
        grpc.StatusCode.UNAVAILABLE,  # the target is down, overloaded or its breaker open
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
"""Failures of the target's own count after which ``count_tokens`` answers the processor's
estimate instead; any other (an unknown model, a refused request) is the answer."""


def auth_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """`headers` with ``x-api-key`` standing for ``authorization: Bearer`` when that is
    absent (an Anthropic client sends its key as ``x-api-key``)."""
    key = headers.get("x-api-key")
    if key is not None and "authorization" not in headers:
        return {**headers, "authorization": f"Bearer {key}"}
    return headers


def _options(request: Request, upstream: Upstream) -> CallOptions:
    return call_options(auth_headers(request.headers), upstream.settings.default_timeout)


def beta_names(request: Request) -> list[str]:
    """The beta features the request's ``anthropic-beta`` headers name."""
    names: list[str] = []
    for value in request.headers.getlist(BETA_HEADER):
        names.extend(n.strip() for n in value.split(",") if n.strip())
    return names


async def create_message(request: Request) -> Response:
    """``POST /v1/messages``."""
    upstream = upstream_of(request)
    try:
        opts = _options(request, upstream)
        body = await read_json_object(request, upstream.settings.max_body_bytes)
        parsed = parse_messages_request(body)
    except LlmeshError as err:
        return error_response(err)
    parsed.input.anthropic_beta.extend(beta_names(request))
    if parsed.stream:
        return UpstreamResponse(
            _events(upstream, parsed, opts), headers={"cache-control": "no-cache"}
        )
    return UpstreamResponse(_message(upstream, parsed, opts), media_type="application/json")


async def _message(
    upstream: Upstream, parsed: MessagesRequest, opts: CallOptions
) -> AsyncGenerator[Part, None]:
    call = upstream.orchestrator.Chat(
        orchestrator_pb2.ChatRequest(input=parsed.input),
        timeout=opts.timeout,
        metadata=opts.metadata,
    )
    try:
        reply = await call
    except grpc.aio.AioRpcError as exc:
        response = error_response(upstream.error(exc))
        response.headers.update(trail_headers(exc.trailing_metadata()))
        yield response
        return
    headers = {
        **call_headers(reply.request_id, reply.cache_hit),
        **trail_headers(await call.trailing_metadata()),
        REQUEST_ID_HEADER: reply.request_id,
    }
    yield OrjsonResponse(message(reply, parsed.model), headers=headers)


async def _events(
    upstream: Upstream, parsed: MessagesRequest, opts: CallOptions
) -> AsyncGenerator[Part, None]:
    call = upstream.orchestrator.StreamChat(
        orchestrator_pb2.StreamChatRequest(input=parsed.input),
        timeout=opts.timeout,
        metadata=opts.metadata,
    )
    encoder = StreamEncoder(parsed.model, uuid.uuid4().hex)
    started = False
    reading: asyncio.Future[Any] | None = None
    counting: asyncio.Future[int] | None = None
    try:
        while True:
            if reading is None:
                reading = asyncio.ensure_future(call.read())
            done, _ = await asyncio.wait({reading}, timeout=PING_INTERVAL)
            if not done:
                if started and not encoder.finished:
                    yield PING
                continue
            event, reading = reading.result(), None
            if event is grpc.aio.EOF:
                break
            kind = event.WhichOneof("event")
            if kind == "start":
                # counted while the target thinks; used unless it reports usage first
                target = f"{event.start.provider}/{event.start.model}"
                counting = asyncio.ensure_future(_input_count(upstream, parsed.input, target, opts))
            elif counting is not None and not encoder.started:
                if kind != "usage":
                    encoder.input_estimate = await counting
                counting.cancel()
                counting = None
            data = encoder.encode(event)
            if not started:
                started = True
                yield {
                    **call_headers(encoder.request_id, event.start.cache_hit),
                    REQUEST_ID_HEADER: encoder.request_id,
                }
            if data:
                yield data
        if not encoder.finished:
            raise LlmeshError(
                Reason.STREAM_INTERRUPTED, "the upstream stream ended without finishing"
            )
    except (grpc.aio.AioRpcError, LlmeshError) as exc:
        err = upstream.error(exc) if isinstance(exc, grpc.aio.AioRpcError) else exc
        if not started:
            yield error_response(err)
        elif not encoder.finished:
            yield error_event(err)
    finally:
        if reading is not None:
            reading.cancel()
        if counting is not None:
            counting.cancel()
        call.cancel()


async def _input_count(
    upstream: Upstream, chat: chat_pb2.ChatInput, model: str, opts: CallOptions
) -> int:
    """The processor's count of the call's input for the target `model` (its messages, system
    prompt and tools), asked with the caller's key, or 0 when it cannot tell in
    `COUNT_TIMEOUT` seconds."""
    try:
        reply = await upstream.processor.CountTokens(
            processor_pb2.CountTokensRequest(model=model, messages=chat.messages, tools=chat.tools),
            timeout=COUNT_TIMEOUT,
            metadata=opts.metadata,
        )
    except grpc.aio.AioRpcError:
        return 0
    return int(reply.tokens)


async def count_tokens(request: Request) -> Response:
    """``POST /v1/messages/count_tokens``: the target's own count of the conversation, its
    ``system`` prompt and its ``tools`` when it counts exactly (an Anthropic target), else
    the processor's count (an estimate where the model has no public tokenizer)."""
    upstream = upstream_of(request)
    try:
        opts = _options(request, upstream)
        body = await read_json_object(request, upstream.settings.max_body_bytes)
        chat = parse_count_request(body)
    except LlmeshError as err:
        return error_response(err)
    chat.anthropic_beta.extend(beta_names(request))
    return UpstreamResponse(_count(upstream, chat, opts), media_type="application/json")


async def _count(
    upstream: Upstream, chat: chat_pb2.ChatInput, opts: CallOptions
) -> AsyncGenerator[Part, None]:
    try:
        exact = await upstream.orchestrator.CountInputTokens(
            orchestrator_pb2.CountInputTokensRequest(input=chat),
            timeout=opts.timeout,
            metadata=opts.metadata,
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() not in ESTIMATE_ON:
            yield error_response(upstream.error(exc))
            return
    else:
        if exact.provider:
            yield OrjsonResponse({"input_tokens": exact.input_tokens})
            return
    try:
        reply = await upstream.processor.CountTokens(
            processor_pb2.CountTokensRequest(
                model=chat.model, messages=chat.messages, tools=chat.tools
            ),
            timeout=opts.timeout,
            metadata=opts.metadata,
        )
    except grpc.aio.AioRpcError as exc:
        yield error_response(upstream.error(exc, "processor"))
        return
    yield OrjsonResponse({"input_tokens": reply.tokens})


def model_object(info: orchestrator_pb2.ModelInfo) -> dict[str, Any]:
    """One model in Anthropic's shape."""
    return {
        "type": "model",
        "id": info.name,
        "display_name": info.name,
        "created_at": "1970-01-01T00:00:00Z",
    }


def model_list(models: Sequence[orchestrator_pb2.ModelInfo]) -> dict[str, Any]:
    """``GET /v1/models`` in Anthropic's shape: every model on one page."""
    data = [model_object(m) for m in models]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def routes() -> list[BaseRoute]:
    """The Messages API routes (the models routes live with the OpenAI ones)."""
    return [
        Route("/v1/messages", create_message, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    ]
