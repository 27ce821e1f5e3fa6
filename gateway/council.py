"""``POST /api/v1/council/stream``: a council (fan-out to several models) as Server-Sent Events.

The body is a `StreamCouncilRequest` in protobuf's JSON mapping; each `StreamCouncilResponse`
(one branch's event, or its `BranchError`) is sent as one ``data:`` event, in the order the
orchestrator interleaved them. As for ``/api/v1/chat/stream``, an error before the first
item is a plain HTTP error response; after it, an ``event: error`` event ends the stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import grpc
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmesh.gateway.errors import error_body, error_response
from llmesh.gateway.inputs import CallOptions, call_options, message_json, read_message
from llmesh.gateway.responses import Part, UpstreamResponse, sse_data, sse_event
from llmesh.gateway.upstream import Upstream, upstream_of
from llmesh.services.common.errors import LlmeshError
from llmesh.v1 import orchestrator_pb2


async def council_stream(request: Request) -> Response:
    """``POST /api/v1/council/stream``: StreamCouncilRequest JSON -> Server-Sent Events."""
    message = orchestrator_pb2.StreamCouncilRequest()
    try:
        upstream = upstream_of(request)
        opts = call_options(request.headers, upstream.settings.default_timeout)
        await read_message(request, message, upstream.settings.max_body_bytes)
    except LlmeshError as err:
        return error_response(err)
    return UpstreamResponse(
        _council_events(upstream, message, opts), headers={"cache-control": "no-cache"}
    )


async def _council_events(
    upstream: Upstream, message: orchestrator_pb2.StreamCouncilRequest, opts: CallOptions
) -> AsyncGenerator[Part, None]:
    call = upstream.orchestrator.StreamCouncil(
        message, timeout=opts.timeout, metadata=opts.metadata
    )
    started = False
    try:
        while True:
            item = await call.read()
            if item is grpc.aio.EOF:
                return
            started = True
            yield sse_data(message_json(item))
    except grpc.aio.AioRpcError as exc:
        err = upstream.error(exc)
        if not started:
            yield error_response(err)
        else:
            yield sse_event("error", orjson.dumps(error_body(err)))
    finally:
        call.cancel()  # a no-op once the call ended; cancels it when the client went away


def routes() -> list[BaseRoute]:
    """The council route."""
    return [Route("/api/v1/council/stream", council_stream, methods=["POST"])]
