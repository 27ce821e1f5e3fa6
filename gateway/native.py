"""The JSON mirror of the gRPC API under ``/api/v1``, in protobuf's canonical JSON mapping.

Requests accept camelCase or snake_case field names; responses use camelCase. A gRPC error
becomes the native error body (see `llmesh.gateway.errors`) with the reason's HTTP status. For
``POST /api/v1/chat/stream`` an error before the first event is answered the same way (so
the status and ``Retry-After`` are usable); once events flowed, it arrives as an
``event: error`` Server-Sent Event and the stream closes. The gateway never adds events.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import grpc
import orjson
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmesh.gateway.errors import error_body, error_response
from llmesh.gateway.inputs import CallOptions, call_options, message_json, read_message
from llmesh.gateway.responses import OrjsonResponse, Part, UpstreamResponse, sse_data, sse_event
from llmesh.gateway.upstream import Upstream, call_headers, trail_headers, upstream_of
from llmesh.services.common.errors import LlmeshError
from llmesh.v1 import orchestrator_pb2, processor_pb2

UnaryMethod = Callable[..., Any]
"""A `grpc.aio` unary-unary stub method."""


async def _unary(
    method: UnaryMethod, request: Message, opts: CallOptions, upstream: Upstream, service: str
) -> AsyncGenerator[Part, None]:
    """Make one unary call and yield its reply (or error) as a whole JSON response."""
    call = method(request, timeout=opts.timeout, metadata=opts.metadata)
    try:
        reply = await call
    except grpc.aio.AioRpcError as exc:
        response = error_response(upstream.error(exc, service))
        response.headers.update(trail_headers(exc.trailing_metadata()))
        yield response
        return
    yield Response(
        message_json(reply),
        media_type="application/json",
        headers=trail_headers(await call.trailing_metadata()),
    )


async def _prepare(request: Request, message: Message) -> tuple[Upstream, CallOptions]:
    upstream = upstream_of(request)
    opts = call_options(request.headers, upstream.settings.default_timeout)
    if request.method == "POST":
        await read_message(request, message, upstream.settings.max_body_bytes)
    return upstream, opts


def _unary_route(
    request_type: type[Message],
    method: Callable[[Upstream], UnaryMethod],
    doc: str,
    service: str = "orchestrator",
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that parses `request_type` JSON, makes one unary call and answers its JSON."""

    async def endpoint(request: Request) -> Response:
        message = request_type()
        try:
            upstream, opts = await _prepare(request, message)
        except LlmeshError as err:
            return error_response(err)
        return UpstreamResponse(
            _unary(method(upstream), message, opts, upstream, service),
            media_type="application/json",
        )

    endpoint.__doc__ = doc
    return endpoint


chat = _unary_route(
    orchestrator_pb2.ChatRequest,
    lambda u: u.orchestrator.Chat,
    "``POST /api/v1/chat``: ChatRequest JSON -> ChatResponse JSON.",
)
list_models = _unary_route(
    orchestrator_pb2.ListModelsRequest,
    lambda u: u.orchestrator.ListModels,
    "``GET /api/v1/models``: ListModelsResponse JSON.",
)
count_tokens = _unary_route(
    processor_pb2.CountTokensRequest,
    lambda u: u.processor.CountTokens,
    "``POST /api/v1/tokens/count``: CountTokensRequest JSON -> CountTokensResponse JSON.",
    "processor",
)
list_targets = _unary_route(
    orchestrator_pb2.ListTargetsRequest,
    lambda u: u.orchestrator.ListTargets,
    "``GET /api/v1/targets``: ListTargetsResponse JSON (breakers, in-flight, queues).",
)
fit_context = _unary_route(
    processor_pb2.FitContextRequest,
    lambda u: u.processor.FitContext,
    "``POST /api/v1/context/fit``: FitContextRequest JSON -> FitContextResponse JSON.",
    "processor",
)


async def chat_stream(request: Request) -> Response:
    """``POST /api/v1/chat/stream``: StreamChatRequest JSON -> Server-Sent Events."""
    message = orchestrator_pb2.StreamChatRequest()
    try:
        upstream, opts = await _prepare(request, message)
    except LlmeshError as err:
        return error_response(err)
    return UpstreamResponse(
        _event_stream(upstream, message, opts), headers={"cache-control": "no-cache"}
    )


async def _event_stream(
    upstream: Upstream, message: orchestrator_pb2.StreamChatRequest, opts: CallOptions
) -> AsyncGenerator[Part, None]:
    call = upstream.orchestrator.StreamChat(message, timeout=opts.timeout, metadata=opts.metadata)
    started = False
    try:
        while True:
            event = await call.read()
            if event is grpc.aio.EOF:
                return
            if not started:
                started = True
                if event.HasField("start"):
                    yield call_headers(event.start.request_id, event.start.cache_hit)
            yield sse_data(message_json(event))
    except grpc.aio.AioRpcError as exc:
        err = upstream.error(exc)
        if not started:
            yield error_response(err)
        else:
            yield sse_event("error", orjson.dumps(error_body(err)))
    finally:
        call.cancel()


async def healthz(request: Request) -> Response:
    """``GET /healthz``: 200 when the orchestrator's health check says SERVING, else 503."""
    upstream = upstream_of(request)
    check = health_pb2.HealthCheckRequest(service=upstream.settings.health_service)
    try:
        reply = await upstream.health.Check(check, timeout=upstream.settings.health_timeout)
    except grpc.aio.AioRpcError as exc:
        body = {"status": "NOT_SERVING", "detail": upstream.error(exc).message}
        return OrjsonResponse(body, status_code=503)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    return OrjsonResponse({"status": status}, status_code=200 if serving else 503)


def routes() -> list[BaseRoute]:
    """The native API's routes."""
    return [
        Route("/api/v1/chat", chat, methods=["POST"]),
        Route("/api/v1/chat/stream", chat_stream, methods=["POST"]),
        Route("/api/v1/models", list_models, methods=["GET"]),
        Route("/api/v1/targets", list_targets, methods=["GET"]),
        Route("/api/v1/tokens/count", count_tokens, methods=["POST"]),
        Route("/api/v1/context/fit", fit_context, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
