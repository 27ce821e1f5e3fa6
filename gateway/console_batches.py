"""The console's JSON view of batch jobs, over the orchestrator's `llmesh.v1.BatchService`
in protobuf's canonical JSON mapping (the OpenAI and Anthropic batch endpoints under ``/v1``
have no dead letters, and speak their own shapes).

- ``GET /api/v1/batches?page_size=&page_token=``: `ListBatchesResponse` JSON, newest first,
  each batch with its counts by item state.
- ``GET /api/v1/batches/{batch_id}``: `GetBatchResponse` JSON.
- ``GET /api/v1/batches/{batch_id}/dead-letters?page_size=&page_token=``:
  `ListDeadLettersResponse` JSON, the items that failed after every attempt, each with its
  last error and attempt trail.

A caller sees only its own tenant's batches (the orchestrator's rule); another tenant's
batch is as absent as an unknown one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmesh.gateway.errors import error_response
from llmesh.gateway.inputs import call_options
from llmesh.gateway.native import UnaryMethod, _unary
from llmesh.gateway.responses import UpstreamResponse
from llmesh.gateway.upstream import Upstream, upstream_of
from llmesh.services.common.errors import LlmeshError, Reason, invalid
from llmesh.v1 import batches_pb2

__all__ = ["routes"]

_INT32_MAX = 2**31 - 1


def fill_request(
    message: Message, path: dict[str, str], query: dict[str, str], paged: bool
) -> Message:
    """`message` with the batch id of the path and the paging fields of the query string;
    an unknown parameter or a page size that is not a whole number is INVALID_REQUEST (the
    orchestrator holds the size to its own bounds)."""
    allowed = ("page_size", "page_token") if paged else ()
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        hint = f"use {', '.join(allowed)}" if allowed else "this endpoint takes none"
        raise invalid(unknown[0], f"unknown parameter; {hint}")
    if "batch_id" in path:
        message.batch_id = path["batch_id"]  # type: ignore[attr-defined]
    raw = query.get("page_size")
    if raw is not None:
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= _INT32_MAX:
            raise invalid("page_size", "must be a whole number from 1")
        message.page_size = int(raw)  # type: ignore[attr-defined]
    if query.get("page_token"):
        message.page_token = query["page_token"]  # type: ignore[attr-defined]
    return message


def _route(
    request_type: type[Message],
    method: Callable[[Upstream], UnaryMethod | None],
    doc: str,
    paged: bool = True,
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            upstream = upstream_of(request)
            opts = call_options(request.headers, upstream.settings.default_timeout)
            message = fill_request(
                request_type(),
                dict(request.path_params),
                dict(request.query_params),
                paged,
            )
            call = method(upstream)
            if call is None:
                raise LlmeshError(
                    Reason.PROVIDER_NOT_CONFIGURED, "batches are not served on this path"
                )
        except LlmeshError as err:
            return error_response(err)
        return UpstreamResponse(
            _unary(call, message, opts, upstream, "orchestrator"), media_type="application/json"
        )

    endpoint.__doc__ = doc
    return endpoint


list_batches = _route(
    batches_pb2.ListBatchesRequest,
    lambda u: None if u.batches is None else u.batches.ListBatches,
    "``GET /api/v1/batches``: ListBatchesResponse JSON, newest first.",
)
get_batch = _route(
    batches_pb2.GetBatchRequest,
    lambda u: None if u.batches is None else u.batches.GetBatch,
    "``GET /api/v1/batches/{batch_id}``: GetBatchResponse JSON.",
    paged=False,
)
dead_letters = _route(
    batches_pb2.ListDeadLettersRequest,
    lambda u: None if u.batches is None else u.batches.ListDeadLetters,
    "``GET /api/v1/batches/{batch_id}/dead-letters``: ListDeadLettersResponse JSON.",
)


def routes() -> list[BaseRoute]:
    """The console's batch routes."""
    return [
        Route("/api/v1/batches", list_batches, methods=["GET"]),
        Route("/api/v1/batches/{batch_id}", get_batch, methods=["GET"]),
        Route("/api/v1/batches/{batch_id}/dead-letters", dead_letters, methods=["GET"]),
    ]
