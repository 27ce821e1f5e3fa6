"""What the OpenAI and Anthropic batch surfaces share: the BatchService stub, a batch's
results as a stream, paging by batch id, and item errors as `LlmeshError`s."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import grpc
from google.protobuf import timestamp_pb2

from llmesh.gateway.inputs import CallOptions, named
from llmesh.gateway.upstream import Upstream
from llmesh.services.common.errors import LlmeshError, Reason, invalid
from llmesh.v1 import batches_pb2, batches_pb2_grpc, errors_pb2

__all__ = [
    "FINAL_STATES",
    "MAX_PAGE",
    "MODES",
    "NoBatchService",
    "batch_service",
    "item_error",
    "mode_of",
    "page_after",
    "page_before",
    "rpc",
    "seconds",
    "status_of",
    "stream_results",
]

FINAL_STATES = frozenset(
    {
        batches_pb2.BATCH_STATE_CANCELLED,
        batches_pb2.BATCH_STATE_COMPLETED,
        batches_pb2.BATCH_STATE_FAILED,
        batches_pb2.BATCH_STATE_EXPIRED,
    }
)
"""The states a batch's results are whole in."""

MAX_PAGE = 100
"""The most batches one list call returns (OpenAI's and Anthropic's limit alike)."""

MODES = {
    "auto": batches_pb2.BATCH_MODE_AUTO,
    "mesh": batches_pb2.BATCH_MODE_MESH,
    "provider_native": batches_pb2.BATCH_MODE_PROVIDER_NATIVE,
}
"""llmesh's ``mode`` field of a create body: how the batch runs (`BatchMode`)."""

T = TypeVar("T")


def mode_of(value: object) -> batches_pb2.BatchMode:
    """The `BatchMode` a create body's ``mode`` names (AUTO when absent)."""
    if value is None:
        return batches_pb2.BATCH_MODE_AUTO
    found = named(MODES, value)
    if found is None:
        raise invalid("mode", 'must be "auto", "mesh" or "provider_native"')
    return found


class NoBatchService(LlmeshError):
    """Batch routes asked where no BatchService is reachable; answered with HTTP 501."""


def status_of(err: LlmeshError) -> int | None:
    """The HTTP status to answer `err` with where it is not its reason's own (501 for
    `NoBatchService`), else None."""
    return 501 if isinstance(err, NoBatchService) else None


def batch_service(upstream: Upstream) -> batches_pb2_grpc.BatchServiceStub:
    """The orchestrator's BatchService, or `NoBatchService` where none is reachable: the
    direct HTTP path serves no batch routes."""
    if upstream.batches is None:
        raise NoBatchService(
            Reason.INVALID_REQUEST,
            "batch jobs are served through the gateway (`llmesh gateway`), not the direct "
            "HTTP path",
        )
    return upstream.batches


async def rpc(upstream: Upstream, call: Awaitable[T]) -> T:
    """Await one unary BatchService call, its gRPC error as a `LlmeshError`."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise upstream.error(exc) from None


def seconds(ts: timestamp_pb2.Timestamp) -> int:
    """A timestamp as Unix seconds."""
    return int(ts.seconds)


def item_error(error: batches_pb2.BatchItemError) -> LlmeshError:
    """An item's stored error as the `LlmeshError` the interactive call would have raised."""
    name = errors_pb2.ErrorReason.Name(error.reason).removeprefix("ERROR_REASON_")
    try:
        reason = Reason(name)
    except ValueError:
        reason = Reason.INTERNAL
    return LlmeshError(reason, error.message or name, metadata=dict(error.metadata))


async def stream_results(
    upstream: Upstream, batch_id: str, opts: CallOptions
) -> AsyncIterator[batches_pb2.BatchItemResult]:
    """Every result of a batch, oldest first, read from the BatchService stream as it comes
    (never the whole batch in memory). Ends normally only on the stream's `finished` event:
    a stream that ends without it, or fails, raises `LlmeshError`, so a cut download never
    looks whole. A stream broken off by the server (UNAVAILABLE) is resumed after the last
    cursor received, once per break while results keep coming."""
    cursor = ""
    resumed_at: str | None = None
    stub = batch_service(upstream)
    while True:
        call = stub.StreamBatchResults(
            batches_pb2.StreamBatchResultsRequest(batch_id=batch_id, cursor=cursor),
            timeout=opts.timeout,
            metadata=opts.metadata,
        )
        try:
            async for event in call:
                kind = event.WhichOneof("event")
                if event.cursor:
                    cursor = event.cursor
                if kind == "result":
                    yield event.result
                elif kind == "finished":
                    return
            raise LlmeshError(
                Reason.STREAM_INTERRUPTED, "the batch's results ended before the batch finished"
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNAVAILABLE and cursor and cursor != resumed_at:
                resumed_at = cursor
                continue
            raise upstream.error(exc) from None
        finally:
            call.cancel()


async def _pages(
    upstream: Upstream, opts: CallOptions, mark: str | None
) -> AsyncIterator[batches_pb2.Batch]:
    """The caller's batches, newest first, page by page; `mark` (a batch id the caller
    must own, else BATCH_NOT_FOUND as asking for it would be) is checked first."""
    stub = batch_service(upstream)
    if mark is not None:
        get = batches_pb2.GetBatchRequest(batch_id=mark)
        await rpc(upstream, stub.GetBatch(get, timeout=opts.timeout, metadata=opts.metadata))
    token = ""
    while True:
        request = batches_pb2.ListBatchesRequest(page_size=MAX_PAGE, page_token=token)
        page: batches_pb2.ListBatchesResponse = await rpc(
            upstream,
            stub.ListBatches(request, timeout=opts.timeout, metadata=opts.metadata),
        )
        for batch in page.batches:
            yield batch
        token = page.next_page_token
        if not token:
            return


async def page_after(
    upstream: Upstream, opts: CallOptions, after: str | None, limit: int
) -> tuple[list[batches_pb2.Batch], bool]:
    """Up to `limit` of the caller's batches, newest first, those older than the batch
    `after` (None: from the newest), and whether more follow.

    The SDKs page by the last batch id they saw, while BatchService pages by opaque
    tokens: the pages are walked from the newest until `after` has gone by."""
    found: list[batches_pb2.Batch] = []
    passed = after is None
    async for batch in _pages(upstream, opts, after):
        if not passed:
            passed = batch.id == after
            continue
        if len(found) == limit:
            return found, True
        found.append(batch)
    return found, False


async def page_before(
    upstream: Upstream, opts: CallOptions, before: str, limit: int
) -> tuple[list[batches_pb2.Batch], bool]:
    """Up to `limit` of the caller's batches newer than the batch `before`, the ones just
    before it, newest first, and whether newer ones remain."""
    found: deque[batches_pb2.Batch] = deque(maxlen=limit)
    more = False
    async for batch in _pages(upstream, opts, before):
        if batch.id == before:
            break
        more = more or len(found) == limit
        found.append(batch)
    return list(found), more
