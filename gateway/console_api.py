"""The JSON and SSE endpoints the console reads, beside the native API under ``/api/v1``.

- ``POST /api/v1/usage``: `GetUsageRequest` JSON -> `GetUsageResponse` JSON (ledger totals).
- ``GET /api/v1/calls?limit=&tenant=&request_id=``: the ledger's latest calls with their
  attempt trails (`ListRecentCallsResponse` JSON); ``request_id`` picks one call.
- ``GET``/``POST /api/v1/budgets``: `GetBudgetsRequest` JSON (POST; GET: every budget the
  caller may see) -> `GetBudgetsResponse` JSON, the caps with what is left of them.
- ``POST /api/v1/mesh/stream``: `WatchMeshRequest` JSON -> Server-Sent Events, one
  `WatchMeshResponse` snapshot per ``data:`` event until the client goes away.

Who sees what is the orchestrator's rule (`llmesh.services.orchestrator.tenancy`): the
gateway forwards the caller's ``authorization`` and nothing else decides.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import grpc
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmesh.gateway.errors import error_body, error_response
from llmesh.gateway.inputs import (
    TIMEOUT_HEADER,
    CallOptions,
    call_options,
    message_json,
    read_message,
)
from llmesh.gateway.native import _unary, _unary_route
from llmesh.gateway.responses import Part, UpstreamResponse, sse_data, sse_event
from llmesh.gateway.upstream import Upstream, upstream_of
from llmesh.services.common.errors import LlmeshError, invalid
from llmesh.v1 import orchestrator_pb2

_QUERY_FIELDS = ("limit", "tenant", "request_id")

usage = _unary_route(
    orchestrator_pb2.GetUsageRequest,
    lambda u: u.orchestrator.GetUsage,
    "``POST /api/v1/usage``: GetUsageRequest JSON -> GetUsageResponse JSON.",
)

budgets = _unary_route(
    orchestrator_pb2.GetBudgetsRequest,
    lambda u: u.orchestrator.GetBudgets,
    "``GET``/``POST /api/v1/budgets``: GetBudgetsRequest JSON -> GetBudgetsResponse JSON.",
)


def recent_calls_request(query: dict[str, str]) -> orchestrator_pb2.ListRecentCallsRequest:
    """The `ListRecentCallsRequest` of ``/api/v1/calls``'s query string."""
    unknown = sorted(set(query) - set(_QUERY_FIELDS))
    if unknown:
        raise invalid(unknown[0], f"unknown parameter; use {', '.join(_QUERY_FIELDS)}")
    message = orchestrator_pb2.ListRecentCallsRequest(
        tenant=query.get("tenant", ""), request_id=query.get("request_id", "")
    )
    raw = query.get("limit")
    if raw is not None:
        if not raw.isdigit() or int(raw) > 100_000:
            raise invalid("limit", "must be a whole number of calls")
        message.limit = int(raw)
    return message


async def recent_calls(request: Request) -> Response:
    """``GET /api/v1/calls``: ListRecentCallsResponse JSON, newest first."""
    try:
        upstream = upstream_of(request)
        opts = call_options(request.headers, upstream.settings.default_timeout)
        message = recent_calls_request(dict(request.query_params))
    except LlmeshError as err:
        return error_response(err)
    return UpstreamResponse(
        _unary(upstream.orchestrator.ListRecentCalls, message, opts, upstream, "orchestrator"),
        media_type="application/json",
    )


async def mesh_stream(request: Request) -> Response:
    """``POST /api/v1/mesh/stream``: WatchMeshRequest JSON -> Server-Sent Events.

    The stream has no deadline unless ``x-llmesh-timeout`` sets one: it lasts as long as
    the console watches."""
    message = orchestrator_pb2.WatchMeshRequest()
    try:
        upstream = upstream_of(request)
        opts = call_options(request.headers, upstream.settings.default_timeout)
        await read_message(request, message, upstream.settings.max_body_bytes)
    except LlmeshError as err:
        return error_response(err)
    if TIMEOUT_HEADER not in request.headers:
        opts = CallOptions(None, opts.metadata)
    return UpstreamResponse(
        _snapshots(upstream, message, opts), headers={"cache-control": "no-cache"}
    )


async def _snapshots(
    upstream: Upstream, message: orchestrator_pb2.WatchMeshRequest, opts: CallOptions
) -> AsyncGenerator[Part, None]:
    call = upstream.orchestrator.WatchMesh(message, timeout=opts.timeout, metadata=opts.metadata)
    started = False
    try:
        while True:
            snapshot = await call.read()
            if snapshot is grpc.aio.EOF:
                return
            started = True
            yield sse_data(message_json(snapshot))
    except grpc.aio.AioRpcError as exc:
        err = upstream.error(exc)
        if not started:
            yield error_response(err)
        else:
            yield sse_event("error", orjson.dumps(error_body(err)))
    finally:
        call.cancel()  # the console went away: stop the orchestrator's stream


def routes() -> list[BaseRoute]:
    """The console's data routes."""
    return [
        Route("/api/v1/usage", usage, methods=["POST"]),
        Route("/api/v1/calls", recent_calls, methods=["GET"]),
        Route("/api/v1/budgets", budgets, methods=["GET", "POST"]),
        Route("/api/v1/mesh/stream", mesh_stream, methods=["POST"]),
    ]
