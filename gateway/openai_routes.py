"""The OpenAI-compatible API under ``/v1``: chat completions (plain and streamed) and models.

The official ``openai`` SDK works against ``http://<gateway>/v1`` unchanged. Errors use
OpenAI's body and status (see `llmesh.gateway.errors`), so the SDK raises the matching class. A
streamed reply that fails before its first chunk is answered as a plain HTTP error; one that
fails later gets a ``data: {"error": ...}`` line and ends WITHOUT ``data: [DONE]``, and so
does an upstream stream that ends without a finish event: a cut stream never looks finished.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator, Sequence

import grpc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmesh.gateway import anthropic
from llmesh.gateway.errors import openai_error_body, openai_error_response
from llmesh.gateway.inputs import CallOptions, call_options, read_json_object
from llmesh.gateway.openai_choices import many_chunks, many_completions
from llmesh.gateway.openai_compat import CompletionRequest, parse_completion_request
from llmesh.gateway.openai_responses import ChunkEncoder, completion, error_line, model_object
from llmesh.gateway.responses import OrjsonResponse, Part, UpstreamResponse
from llmesh.gateway.upstream import Upstream, call_headers, trail_headers, upstream_of
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.v1 import orchestrator_pb2

log = logging.getLogger("llmesh.gateway")

DROPPED_HEADER = "x-llmesh-dropped-params"
"""Names the body fields the gateway accepted and dropped (its and the route's ``drop_params``,
and unknown fields under ``unknown_fields: drop``)."""


async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    upstream = upstream_of(request)
    try:
        opts = call_options(request.headers, upstream.settings.default_timeout)
        body = await read_json_object(request, upstream.settings.max_body_bytes)
        settings = upstream.settings
        parsed = parse_completion_request(
            body,
            settings.drops_for(body.get("model")),
            drop_unknown=settings.unknown_fields == "drop",
        )
    except LlmeshError as err:
        return openai_error_response(err)
    if parsed.dropped:
        log.debug("dropped /v1/chat/completions fields: %s", ", ".join(parsed.dropped))
    created = int(time.time())
    if parsed.n > 1:  # one call per choice (`llmesh.gateway.openai_choices`)
        dropped = _dropped_headers(parsed)
        if parsed.stream:
            chunks = many_chunks(upstream, parsed, opts, created, uuid.uuid4().hex, dropped)
            return UpstreamResponse(chunks, headers={"cache-control": "no-cache"})
        whole = many_completions(upstream, parsed, opts, created, dropped)
        return UpstreamResponse(whole, media_type="application/json")
    if parsed.stream:
        return UpstreamResponse(
            _chunks(upstream, parsed, opts, created), headers={"cache-control": "no-cache"}
        )
    return UpstreamResponse(
        _completion(upstream, parsed, opts, created), media_type="application/json"
    )


async def _completion(
    upstream: Upstream, parsed: CompletionRequest, opts: CallOptions, created: int
) -> AsyncGenerator[Part, None]:
    call = upstream.orchestrator.Chat(
        orchestrator_pb2.ChatRequest(input=parsed.input),
        timeout=opts.timeout,
        metadata=opts.metadata,
    )
    try:
        reply = await call
    except grpc.aio.AioRpcError as exc:
        response = openai_error_response(upstream.error(exc))
        response.headers.update(trail_headers(exc.trailing_metadata()))
        response.headers.update(_dropped_headers(parsed))
        yield response
        return
    headers = {
        **call_headers(reply.request_id, reply.cache_hit),
        **trail_headers(await call.trailing_metadata()),
        **_dropped_headers(parsed),
    }
    yield OrjsonResponse(completion(reply, parsed.model, created), headers=headers)


async def _chunks(
    upstream: Upstream, parsed: CompletionRequest, opts: CallOptions, created: int
) -> AsyncGenerator[Part, None]:
    call = upstream.orchestrator.StreamChat(
        orchestrator_pb2.StreamChatRequest(input=parsed.input),
        timeout=opts.timeout,
        metadata=opts.metadata,
    )
    encoder = ChunkEncoder(parsed.model, created, parsed.include_usage, uuid.uuid4().hex)
    started = False
    try:
        while True:
            event = await call.read()
            if event is grpc.aio.EOF:
                break
            data = encoder.encode(event)
            if not started:
                started = True
                yield {
                    **call_headers(encoder.request_id, event.start.cache_hit),
                    **_dropped_headers(parsed),
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
            response = openai_error_response(err)
            response.headers.update(_dropped_headers(parsed))
            yield response
        elif not encoder.finished:
            yield error_line(openai_error_body(err))
    finally:
        call.cancel()


def _dropped_headers(parsed: CompletionRequest) -> dict[str, str]:
    return {DROPPED_HEADER: ", ".join(parsed.dropped)} if parsed.dropped else {}


async def list_models(request: Request) -> Response:
    """``GET /v1/models``."""
    return await _models(request, None)


async def retrieve_model(request: Request) -> Response:
    """``GET /v1/models/{id}``: a listed name (``provider/model``, alias) or a bare model id."""
    return await _models(request, request.path_params["model_id"])


async def _models(request: Request, wanted: str | None) -> Response:
    upstream = upstream_of(request)
    # Anthropic clients send anthropic-version on every request: answer in their shape.
    shaped = request.headers.get(anthropic.VERSION_HEADER) is not None
    fail = anthropic.error_response if shaped else openai_error_response
    headers = anthropic.auth_headers(request.headers) if shaped else request.headers
    try:
        opts = call_options(headers, upstream.settings.default_timeout)
    except LlmeshError as err:
        return fail(err)
    return UpstreamResponse(
        _model_reply(upstream, opts, wanted, shaped), media_type="application/json"
    )


async def _model_reply(
    upstream: Upstream, opts: CallOptions, wanted: str | None, shaped: bool
) -> AsyncGenerator[Part, None]:
    fail = anthropic.error_response if shaped else openai_error_response
    render = anthropic.model_object if shaped else model_object
    try:
        reply = await upstream.orchestrator.ListModels(
            orchestrator_pb2.ListModelsRequest(), timeout=opts.timeout, metadata=opts.metadata
        )
    except grpc.aio.AioRpcError as exc:
        yield fail(upstream.error(exc))
        return
    if wanted is None:
        if shaped:
            yield OrjsonResponse(anthropic.model_list(reply.models))
            return
        data = [model_object(m) for m in reply.models]
        yield OrjsonResponse({"object": "list", "data": data})
        return
    try:
        yield OrjsonResponse(render(_find_model(reply.models, wanted)))
    except LlmeshError as err:
        yield fail(err)


def _find_model(
    models: Sequence[orchestrator_pb2.ModelInfo], wanted: str
) -> orchestrator_pb2.ModelInfo:
    """The model named `wanted`, or the one provider model a bare name stands for.

    Mirrors the orchestrator's routing: names (and aliases, routes) first, then a bare model
    id listed by exactly one provider, answered under the name asked for.
    """
    for info in models:
        if info.name == wanted:
            return info
    listed = [m for m in models if not m.alias_for and m.provider_model == wanted]
    if len(listed) == 1:
        info = orchestrator_pb2.ModelInfo()
        info.CopyFrom(listed[0])
        info.name = wanted
        return info
    if listed:
        candidates = [m.name for m in listed]
        raise LlmeshError(
            Reason.MODEL_NOT_FOUND,
            f"model {wanted!r} is listed by several providers; name one of: "
            + ", ".join(candidates),
            metadata={"model": wanted, "candidates": ",".join(candidates)},
        )
    raise LlmeshError(
        Reason.MODEL_NOT_FOUND, f"the model {wanted!r} does not exist", metadata={"model": wanted}
    )


def routes() -> list[BaseRoute]:
    """The OpenAI-compatible routes."""
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"]),
    ]
