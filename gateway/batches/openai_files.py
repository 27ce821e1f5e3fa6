"""OpenAI's ``GET /v1/files`` and ``DELETE /v1/files/{file_id}`` over BatchService.

The list holds the caller's uploaded batch input files, newest first, paged by ``after``
(a file id) and ``limit``; ``purpose`` filters it (only ``batch`` files are stored) and
``order`` is ``desc``. A batch's output and error files are views of its results, not
stored files: they are not listed and cannot be deleted (delete the batch's input file,
or keep the results). Deleting an input file leaves the batches created from it whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from llmesh.gateway.batches import openai_objects as objects
from llmesh.gateway.batches.common import batch_service, rpc, status_of
from llmesh.gateway.errors import openai_error_response
from llmesh.gateway.inputs import CallOptions, call_options
from llmesh.gateway.responses import OrjsonResponse
from llmesh.gateway.upstream import Upstream, upstream_of
from llmesh.services.common.errors import LlmeshError, Reason, invalid
from llmesh.v1 import batches_pb2

__all__ = ["delete_file", "list_files"]

MAX_FILES = 10_000
"""The most files one list call returns (OpenAI's limit)."""


def _fail(err: LlmeshError) -> Response:
    return openai_error_response(err, status_of(err))


def _options(request: Request) -> tuple[Upstream, CallOptions]:
    upstream = upstream_of(request)
    return upstream, call_options(request.headers, upstream.settings.default_timeout)


async def _files(upstream: Upstream, opts: CallOptions) -> AsyncIterator[batches_pb2.BatchFile]:
    """Every file of the caller, newest first, a page at a time."""
    stub = batch_service(upstream)
    token = ""
    while True:
        reply: batches_pb2.ListBatchFilesResponse = await rpc(
            upstream,
            stub.ListBatchFiles(
                batches_pb2.ListBatchFilesRequest(page_size=100, page_token=token),
                timeout=opts.timeout,
                metadata=opts.metadata,
            ),
        )
        for file in reply.files:
            yield file
        token = reply.next_page_token
        if not token:
            return


def _limit(raw: str | None) -> int:
    if raw is None:
        return MAX_FILES
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_FILES:
        raise invalid("limit", f"must be an integer from 1 to {MAX_FILES}")
    return int(raw)


async def list_files(request: Request) -> Response:
    """``GET /v1/files`` (``purpose``, ``limit``, ``order``, ``after``): the caller's
    uploaded files, newest first."""
    query = request.query_params
    try:
        upstream, opts = _options(request)
        limit = _limit(query.get("limit"))
        if query.get("order", "desc") != "desc":
            raise invalid("order", "only desc (newest first) is supported")
        after = query.get("after") or None
        found: list[batches_pb2.BatchFile] = []
        more = False
        if query.get("purpose") in (None, "", "batch"):
            passed = after is None
            async for file in _files(upstream, opts):
                if not passed:
                    passed = file.id == after
                    continue
                if len(found) == limit:
                    more = True
                    break
                found.append(file)
    except LlmeshError as err:
        return _fail(err)
    data = [objects.file_object(f) for f in found]
    return OrjsonResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
        }
    )


async def delete_file(request: Request) -> Response:
    """``DELETE /v1/files/{file_id}``: delete one of the caller's uploaded files."""
    file_id = request.path_params["file_id"]
    try:
        upstream, opts = _options(request)
        stub = batch_service(upstream)
        if objects.results_file(file_id) is not None:
            raise LlmeshError(
                Reason.INVALID_REQUEST,
                f"file {file_id!r} is a batch's results: it is not a stored file to delete",
            )
        reply: batches_pb2.DeleteBatchFileResponse = await rpc(
            upstream,
            stub.DeleteBatchFile(
                batches_pb2.DeleteBatchFileRequest(file_id=file_id),
                timeout=opts.timeout,
                metadata=opts.metadata,
            ),
        )
    except LlmeshError as err:
        return _fail(err)
    return OrjsonResponse({"id": reply.file_id, "object": "file", "deleted": True})
