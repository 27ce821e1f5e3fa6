"""The OpenAI Responses API: ``POST /v1/responses`` (plain and streamed) and, with response
storage on, ``GET`` / ``DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``.

Calls go through the orchestrator's ``Chat`` / ``StreamChat`` as /v1 chat completions do, so
any llmesh model serves them, and budgets, fallbacks, the ledger and the attempt trail
apply. An ``anthropic-beta`` header travels as on ``/v1/messages``
(`ChatInput.anthropic_beta`, for the routes that allow it), so interleaved thinking can be
asked for here too. Errors use OpenAI's body and status (`llmesh.gateway.errors`); one after
the stream started is an ``error`` event then ``response.failed``
(`llmesh.gateway.responses_api.events`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import grpc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmesh.gateway.anthropic.routes import beta_names
from llmesh.gateway.errors import OPENAI_CODE, openai_error_body, openai_error_response
from llmesh.gateway.inputs import CallOptions, call_options, read_json_object
from llmesh.gateway.responses import OrjsonResponse, Part, UpstreamResponse
from llmesh.gateway.responses_api.events import EventEncoder
from llmesh.gateway.responses_api.input_items import listed_items, page
from llmesh.gateway.responses_api.render import whole_response
from llmesh.gateway.responses_api.request import ResponsesRequest, parse_request
from llmesh.gateway.responses_api.store import ResponseStorage
from llmesh.gateway.upstream import Upstream, call_headers, trail_headers, upstream_of
from llmesh.services.common.errors import LlmeshError, Reason, invalid
from llmesh.v1 import chat_pb2, orchestrator_pb2

__all__ = ["routes"]

log = logging.getLogger("llmesh.gateway")

_STORAGE_OFF = (
    "response storage is off on this gateway (gateway.response_ttl_days is 0, or it runs "
    "without a ledger database)"
)


class ResponseNotFound(LlmeshError):
    """A response id that is unknown, expired or another tenant's: answered with a 404."""


def _not_found(response_id: str, param: str | None, code: str) -> ResponseNotFound:
    err = ResponseNotFound(
        Reason.INVALID_REQUEST,
        f"Response with id {response_id!r} not found.",
        metadata={OPENAI_CODE: code},
    )
    if param:
        err = ResponseNotFound(
            Reason.INVALID_REQUEST,
            f"Previous response with id {response_id!r} not found.",
            violations=invalid(param, "not found").violations,
            metadata={OPENAI_CODE: code},
        )
    return err


def _error(err: LlmeshError) -> Response:
    return openai_error_response(err, 404 if isinstance(err, ResponseNotFound) else None)


def _storage(request: Request) -> ResponseStorage | None:
    return cast(ResponseStorage | None, getattr(request.state, "responses", None))


@dataclass(frozen=True)
class _Call:
    """One response being made: its request, conversation so far and where it is stored."""

    parsed: ResponsesRequest
    chat: chat_pb2.ChatInput
    history: list[Any]
    storage: ResponseStorage | None
    tenant: str
    response_id: str
    created_at: int

    def store_body(self, response: dict[str, Any]) -> dict[str, Any]:
        items = [*self.history, *self.parsed.items, *response["output"]]
        return {"items": items, "response": response, "input": listed_items(self.parsed.items)}

    async def save(self, response: dict[str, Any]) -> None:
        if self.storage is None:
            return
        try:
            await self.storage.save(self.response_id, self.tenant, self.store_body(response))
        except Exception as exc:
            log.exception("storing response %s failed", self.response_id)
            raise LlmeshError(
                Reason.INTERNAL, f"the response could not be stored: {type(exc).__name__}"
            ) from None


async def _prepare(
    parsed: ResponsesRequest, storage: ResponseStorage | None, headers: Mapping[str, str]
) -> _Call:
    if storage is None:
        if parsed.previous_response_id is not None:
            raise invalid("previous_response_id", f"{_STORAGE_OFF}; send the whole conversation")
        if parsed.store:
            raise invalid("store", f"{_STORAGE_OFF}; send store: false")
    store = storage is not None and parsed.store is not False
    history: list[Any] = []
    tenant = ""
    if storage is not None and (store or parsed.previous_response_id):
        tenant = await storage.tenant(headers)
    if storage is not None and parsed.previous_response_id is not None:
        found = await storage.load(parsed.previous_response_id, tenant)
        if found is None:
            raise _not_found(
                parsed.previous_response_id, "previous_response_id", "previous_response_not_found"
            )
        history = list(found.body["items"])
    return _Call(
        parsed,
        parsed.chat_input(history),
        history,
        storage if store else None,
        tenant,
        f"resp_{secrets.token_hex(16)}",
        int(time.time()),
    )


async def create_response(request: Request) -> Response:
    """``POST /v1/responses``."""
    upstream = upstream_of(request)
    try:
        opts = call_options(request.headers, upstream.settings.default_timeout)
        body = await read_json_object(request, upstream.settings.max_body_bytes)
        call = await _prepare(parse_request(body), _storage(request), request.headers)
    except LlmeshError as err:
        return _error(err)
    call.chat.anthropic_beta.extend(beta_names(request))  # as on /v1/messages
    if call.parsed.stream:
        return UpstreamResponse(
            _events(upstream, call, opts), headers={"cache-control": "no-cache"}
        )
    return UpstreamResponse(_whole(upstream, call, opts), media_type="application/json")


async def _whole(upstream: Upstream, call: _Call, opts: CallOptions) -> AsyncGenerator[Part, None]:
    rpc = upstream.orchestrator.Chat(
        orchestrator_pb2.ChatRequest(input=call.chat), timeout=opts.timeout, metadata=opts.metadata
    )
    try:
        reply = await rpc
    except grpc.aio.AioRpcError as exc:
        failed = openai_error_response(upstream.error(exc))
        failed.headers.update(trail_headers(exc.trailing_metadata()))
        yield failed
        return
    headers = {
        **call_headers(reply.request_id, reply.cache_hit),
        **trail_headers(await rpc.trailing_metadata()),
    }
    stored = call.storage is not None
    response = whole_response(
        reply,
        call.response_id,
        call.parsed.echo,
        call.created_at,
        call.parsed.previous_response_id,
        stored,
    )
    try:
        await call.save(response)
    except LlmeshError as err:
        yield openai_error_response(err)
        return
    yield OrjsonResponse(response, headers=headers)


async def _events(upstream: Upstream, call: _Call, opts: CallOptions) -> AsyncGenerator[Part, None]:
    rpc = upstream.orchestrator.StreamChat(
        orchestrator_pb2.StreamChatRequest(input=call.chat),
        timeout=opts.timeout,
        metadata=opts.metadata,
    )
    encoder = EventEncoder(
        call.response_id,
        call.parsed.echo,
        call.created_at,
        call.parsed.previous_response_id,
        call.storage is not None,
    )
    started = False
    try:
        while True:
            event = await rpc.read()
            if event is grpc.aio.EOF:
                break
            data = encoder.encode(event)
            if not started:
                started = True
                yield call_headers(
                    event.start.request_id or encoder.request_id, event.start.cache_hit
                )
            if encoder.final is not None:
                await call.save(encoder.final)
            if data:
                yield data
        if not encoder.finished:
            raise LlmeshError(
                Reason.STREAM_INTERRUPTED, "the upstream stream ended without finishing"
            )
    except (grpc.aio.AioRpcError, LlmeshError) as exc:
        err = upstream.error(exc) if isinstance(exc, grpc.aio.AioRpcError) else exc
        if not started:
            yield _error(err)
        elif not encoder.finished:
            error = openai_error_body(err)["error"]
            yield encoder.fail(error["code"], error["message"], error["param"])
    finally:
        rpc.cancel()


async def _stored(request: Request) -> tuple[ResponseStorage, str, str] | Response:
    storage = _storage(request)
    response_id = request.path_params["response_id"]
    try:
        if storage is None:
            raise invalid("response_id", _STORAGE_OFF)
        return storage, await storage.tenant(request.headers), response_id
    except LlmeshError as err:
        return _error(err)


async def retrieve_response(request: Request) -> Response:
    """``GET /v1/responses/{id}``: a stored response of the caller's tenant."""
    found = await _stored(request)
    if isinstance(found, Response):
        return found
    storage, tenant, response_id = found
    stored = await storage.load(response_id, tenant)
    if stored is None:
        return _error(_not_found(response_id, None, "not_found"))
    return OrjsonResponse(stored.body["response"])


async def list_input_items(request: Request) -> Response:
    """``GET /v1/responses/{id}/input_items``: the stored response's input items, a page."""
    found = await _stored(request)
    if isinstance(found, Response):
        return found
    storage, tenant, response_id = found
    stored = await storage.load(response_id, tenant)
    if stored is None:
        return _error(_not_found(response_id, None, "not_found"))
    try:
        return OrjsonResponse(page(stored.body.get("input", []), request.query_params))
    except LlmeshError as err:
        return _error(err)


async def delete_response(request: Request) -> Response:
    """``DELETE /v1/responses/{id}``."""
    found = await _stored(request)
    if isinstance(found, Response):
        return found
    storage, tenant, response_id = found
    if not await storage.delete(response_id, tenant):
        return _error(_not_found(response_id, None, "not_found"))
    return OrjsonResponse({"id": response_id, "object": "response", "deleted": True})


def routes() -> list[BaseRoute]:
    """The Responses API routes."""
    return [
        Route("/v1/responses", create_response, methods=["POST"]),
        Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
        Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
        Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    ]
