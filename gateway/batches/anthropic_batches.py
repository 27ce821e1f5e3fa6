"""Anthropic's Message Batches API over BatchService: ``/v1/messages/batches`` create,
retrieve, list, cancel and results, so the ``anthropic`` SDK's ``messages.batches`` work
unchanged.

Each request's ``params`` are parsed by the Messages parser (the errors of ``POST
/v1/messages``, named by the request's index); the results file is JSONL of ``{"custom_id",
"result": {"type": "succeeded", "message"} | {"type": "errored", "error"}}``, streamed from
``StreamBatchResults``, each message the body ``/v1/messages`` returns. Errors are in
Anthropic's shape.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import orjson
from google.protobuf import timestamp_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmesh.gateway.anthropic import auth_headers
from llmesh.gateway.anthropic.errors import error_body, error_response
from llmesh.gateway.anthropic.render import message
from llmesh.gateway.anthropic.request import parse_messages_request
from llmesh.gateway.anthropic.routes import beta_names
from llmesh.gateway.batches.common import (
    FINAL_STATES,
    MAX_PAGE,
    batch_service,
    item_error,
    mode_of,
    page_after,
    page_before,
    rpc,
    status_of,
    stream_results,
)
from llmesh.gateway.inputs import CallOptions, call_options, read_json_object
from llmesh.gateway.responses import OrjsonResponse, Part, UpstreamResponse
from llmesh.gateway.upstream import Upstream, upstream_of
from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason, invalid
from llmesh.v1 import batches_pb2

__all__ = ["batch_object", "create_request", "result_line", "routes"]

MAX_REQUESTS = 100_000
"""The most requests one Message Batch holds (Anthropic's limit)."""
_CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_WINDOW_SECONDS = 24 * 3600


def _fail(err: LlmeshError) -> Response:
    return error_response(err, status_of(err))


def _options(request: Request) -> tuple[Upstream, CallOptions]:
    upstream = upstream_of(request)
    return upstream, call_options(auth_headers(request.headers), upstream.settings.default_timeout)


def _in_request(err: LlmeshError, index: int) -> LlmeshError:
    """`err` of one request's ``params``, its fields named from the body's root."""
    prefix = f"requests[{index}].params"
    violations = tuple(FieldViolation(f"{prefix}.{v.field}", v.description) for v in err.violations)
    text = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return LlmeshError(err.reason, text or f"{prefix}: {err.message}", violations=violations)


def create_request(
    body: dict[str, Any], betas: Sequence[str] = ()
) -> batches_pb2.CreateBatchRequest:
    """The `CreateBatchRequest` of a ``POST /v1/messages/batches`` body (``requests``, and
    llmesh's ``mode``); `betas`, the request's ``anthropic-beta`` features, go with every
    item as they go with a ``/v1/messages`` call."""
    for key in body:
        if key not in ("requests", "mode"):
            raise invalid(key, "is not a supported field of this request")
    requests = body.get("requests")
    if not isinstance(requests, list) or not 1 <= len(requests) <= MAX_REQUESTS:
        raise invalid("requests", f"must be an array of 1 to {MAX_REQUESTS} requests")
    out = batches_pb2.CreateBatchRequest(mode=mode_of(body.get("mode")))
    seen: set[str] = set()
    for i, entry in enumerate(requests):
        if not isinstance(entry, dict) or set(entry) != {"custom_id", "params"}:
            raise invalid(f"requests[{i}]", "must be an object of custom_id and params")
        custom_id = entry["custom_id"]
        if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
            raise invalid(f"requests[{i}].custom_id", "must be 1 to 64 letters, digits, '-' or '_'")
        if custom_id in seen:
            raise invalid(f"requests[{i}].custom_id", f"{custom_id!r} is used more than once")
        seen.add(custom_id)
        params = entry["params"]
        if not isinstance(params, dict):
            raise invalid(f"requests[{i}].params", "must be an object")
        if params.get("stream") is True:
            raise invalid(f"requests[{i}].params.stream", "must be false in a batch")
        try:
            parsed = parse_messages_request(params)
        except LlmeshError as err:
            raise _in_request(err, i) from None
        parsed.input.anthropic_beta.extend(betas)
        out.items.add(custom_id=custom_id, chat=parsed.input)
    return out


def _time(ts: timestamp_pb2.Timestamp) -> str:
    return str(timestamp_pb2.Timestamp(seconds=ts.seconds).ToJsonString())


def _ended(batch: batches_pb2.Batch) -> bool:
    return batch.state in FINAL_STATES


def batch_object(batch: batches_pb2.Batch, base_url: str) -> dict[str, Any]:
    """Anthropic's ``message_batch`` object; `base_url` (the gateway's, ending in ``/``)
    starts its ``results_url``."""
    counts = batch.counts
    ended = _ended(batch)
    if ended:
        status = "ended"
    elif batch.state == batches_pb2.BATCH_STATE_CANCELLING:
        status = "canceling"
    else:
        status = "in_progress"
    expired = batch.state == batches_pb2.BATCH_STATE_EXPIRED
    expires = timestamp_pb2.Timestamp(seconds=batch.created_at.seconds + _WINDOW_SECONDS)
    cancelled = batch.state in (
        batches_pb2.BATCH_STATE_CANCELLING,
        batches_pb2.BATCH_STATE_CANCELLED,
    )
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {
            "processing": 0 if ended else counts.pending,
            "succeeded": counts.completed,
            "errored": counts.failed + counts.dead,
            "canceled": counts.cancelled,
            "expired": counts.pending if expired else 0,
        },
        "created_at": _time(batch.created_at),
        "expires_at": expires.ToJsonString(),
        "ended_at": _time(batch.finished_at) if ended and batch.HasField("finished_at") else None,
        "cancel_initiated_at": (
            _time(batch.finished_at) if cancelled and batch.HasField("finished_at") else None
        ),
        "archived_at": None,
        "results_url": f"{base_url}v1/messages/batches/{batch.id}/results" if ended else None,
    }


def result_line(result: batches_pb2.BatchItemResult) -> bytes:
    """One line of a results file."""
    kind = result.WhichOneof("outcome")
    outcome: dict[str, Any]
    if result.state == batches_pb2.BATCH_ITEM_STATE_CANCELLED and kind != "chat":
        outcome = {"type": "canceled"}  # the batch's cancel stopped it before it ran
    elif kind == "chat":
        outcome = {"type": "succeeded", "message": message(result.chat, result.chat.model)}
    elif kind == "error":
        err = item_error(result.error)
        outcome = {"type": "errored", "error": error_body(err)}
    else:  # an embeddings item of a batch made through the OpenAI API
        err = LlmeshError(Reason.INVALID_REQUEST, "the item is not a Messages request")
        outcome = {"type": "errored", "error": error_body(err)}
    return orjson.dumps({"custom_id": result.custom_id, "result": outcome}) + b"\n"


async def _get(upstream: Upstream, opts: CallOptions, batch_id: str) -> batches_pb2.Batch:
    stub = batch_service(upstream)
    get = batches_pb2.GetBatchRequest(batch_id=batch_id)
    reply: batches_pb2.GetBatchResponse = await rpc(
        upstream, stub.GetBatch(get, timeout=opts.timeout, metadata=opts.metadata)
    )
    return reply.batch


async def create_batch(request: Request) -> Response:
    """``POST /v1/messages/batches``."""
    try:
        upstream, opts = _options(request)
        stub = batch_service(upstream)
        body = await read_json_object(request, upstream.settings.max_body_bytes)
        create = create_request(body, beta_names(request))
        reply = await rpc(
            upstream,
            stub.CreateBatch(create, timeout=opts.timeout, metadata=opts.metadata),
        )
    except LlmeshError as err:
        return _fail(err)
    return OrjsonResponse(batch_object(reply.batch, str(request.base_url)))


async def retrieve_batch(request: Request) -> Response:
    """``GET /v1/messages/batches/{batch_id}``."""
    try:
        upstream, opts = _options(request)
        batch = await _get(upstream, opts, request.path_params["batch_id"])
    except LlmeshError as err:
        return _fail(err)
    return OrjsonResponse(batch_object(batch, str(request.base_url)))


async def cancel_batch(request: Request) -> Response:
    """``POST /v1/messages/batches/{batch_id}/cancel``."""
    try:
        upstream, opts = _options(request)
        stub = batch_service(upstream)
        cancel = batches_pb2.CancelBatchRequest(batch_id=request.path_params["batch_id"])
        reply = await rpc(
            upstream,
            stub.CancelBatch(cancel, timeout=opts.timeout, metadata=opts.metadata),
        )
    except LlmeshError as err:
        return _fail(err)
    return OrjsonResponse(batch_object(reply.batch, str(request.base_url)))


async def list_batches(request: Request) -> Response:
    """``GET /v1/messages/batches`` (``after_id``, ``before_id``, ``limit``)."""
    query = request.query_params
    try:
        upstream, opts = _options(request)
        raw = query.get("limit")
        if raw is not None and not (raw.isdigit() and 1 <= int(raw) <= MAX_PAGE):
            raise invalid("limit", f"must be an integer from 1 to {MAX_PAGE}")
        limit = int(raw) if raw is not None else 20
        after, before = query.get("after_id"), query.get("before_id")
        if after and before:
            raise invalid("before_id", "cannot be given with after_id")
        if before:
            batches, more = await page_before(upstream, opts, before, limit)
        else:
            batches, more = await page_after(upstream, opts, after or None, limit)
    except LlmeshError as err:
        return _fail(err)
    base = str(request.base_url)
    data = [batch_object(b, base) for b in batches]
    return OrjsonResponse(
        {
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


async def batch_results(request: Request) -> Response:
    """``GET /v1/messages/batches/{batch_id}/results``: JSONL, once the batch ended."""
    batch_id = request.path_params["batch_id"]
    try:
        upstream, opts = _options(request)
        batch = await _get(upstream, opts, batch_id)
        if not _ended(batch):
            raise LlmeshError(
                Reason.BATCH_STATE_CONFLICT,
                f"the batch {batch_id} has not ended: its results are not ready",
            )
    except LlmeshError as err:
        return _fail(err)
    return UpstreamResponse(_results(upstream, opts, batch_id), media_type="application/binary")


async def _results(
    upstream: Upstream, opts: CallOptions, batch_id: str
) -> AsyncGenerator[Part, None]:
    started = False
    try:
        async for result in stream_results(upstream, batch_id, opts):
            started = True
            yield result_line(result)
    except LlmeshError as err:
        if started:
            raise  # a cut download never looks whole
        yield _fail(err)


def routes() -> list[BaseRoute]:
    """The Message Batches routes."""
    base = "/v1/messages/batches"
    return [
        Route(base, create_batch, methods=["POST"]),
        Route(base, list_batches, methods=["GET"]),
        Route(base + "/{batch_id}", retrieve_batch, methods=["GET"]),
        Route(base + "/{batch_id}/cancel", cancel_batch, methods=["POST"]),
        Route(base + "/{batch_id}/results", batch_results, methods=["GET"]),
    ]
