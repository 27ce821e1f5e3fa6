"""OpenAI's files and batches endpoints over BatchService, so the ``openai`` SDK's batch
workflow (upload, create, poll, download the results) runs unchanged.

``POST /v1/files`` (``purpose=batch``) reads the upload line by line, translates every
line (`openai_lines`) and streams the items to ``UploadBatchFile`` as it goes: a bad line
is a 400 naming the line, and nothing is stored. A batch's output and error files are
drawn from ``StreamBatchResults`` as they are downloaded, line by line, never held whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from tempfile import SpooledTemporaryFile

import grpc
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmesh.gateway.batches import openai_objects as objects
from llmesh.gateway.batches.common import (
    FINAL_STATES,
    MAX_PAGE,
    batch_service,
    page_after,
    rpc,
    status_of,
    stream_results,
)
from llmesh.gateway.batches.openai_files import delete_file, list_files
from llmesh.gateway.batches.openai_lines import (
    FileLines,
    at_line,
    empty_file,
    error_line,
    item_json,
    output_line,
)
from llmesh.gateway.errors import BodyTooLarge, openai_error_response
from llmesh.gateway.inputs import CallOptions, call_options, read_json_object
from llmesh.gateway.responses import OrjsonResponse, Part, UpstreamResponse
from llmesh.gateway.settings import GatewaySettings
from llmesh.gateway.upstream import Upstream, upstream_of
from llmesh.services.common.errors import LlmeshError, Reason, invalid
from llmesh.v1 import batches_pb2, batches_pb2_grpc

__all__ = ["routes"]

UPLOAD_CHUNK = 1 << 20
"""Bytes of translated lines sent per ``UploadBatchFile`` message (a line may span two:
the service joins the chunks), so no message nears the gRPC size limit; and the size past
which the translated file is kept on disk rather than in memory."""
READ_CHUNK = 1 << 16
"""Bytes read from the uploaded file at a time."""
BOM = b"\xef\xbb\xbf"
"""The UTF-8 byte order mark, skipped at the start of a file."""


def _fail(err: LlmeshError) -> Response:
    return openai_error_response(err, status_of(err))


def _options(request: Request) -> tuple[Upstream, CallOptions]:
    upstream = upstream_of(request)
    return upstream, call_options(request.headers, upstream.settings.default_timeout)


def _no_file(file_id: str) -> LlmeshError:
    return LlmeshError(Reason.BATCH_NOT_FOUND, f"no file with id {file_id!r}")


async def create_file(request: Request) -> Response:
    """``POST /v1/files``: a batch input file (multipart ``file`` and ``purpose=batch``)."""
    try:
        upstream, opts = _options(request)
        stub = batch_service(upstream)
        limit = upstream.settings.max_batch_file_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit + UPLOAD_CHUNK:
            raise BodyTooLarge(Reason.INVALID_REQUEST, f"the file is larger than {limit} bytes")
        async with request.form(max_files=1, max_fields=8) as form:
            purpose = form.get("purpose")
            if purpose != "batch":
                raise invalid("purpose", 'must be "batch": only batch input files are kept')
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise invalid("file", "must be a file")
            if upload.size is not None and upload.size > limit:
                raise BodyTooLarge(Reason.INVALID_REQUEST, f"the file is larger than {limit} bytes")
            stored = await _upload(upstream, stub, upload, opts)
    except LlmeshError as err:
        return _fail(err)
    return OrjsonResponse(objects.file_object(stored))


async def _lines(upload: UploadFile, limit: int) -> AsyncGenerator[tuple[int, bytes], None]:
    """The non-blank lines of `upload`, numbered from 1, read a chunk at a time; a line
    over `limit` bytes is refused as soon as it is seen to be, without reading it all."""
    number = 0
    buffer = bytearray()
    while True:
        chunk = await upload.read(READ_CHUNK)
        start = len(buffer)
        buffer += chunk
        if number == 0 and buffer.startswith(BOM):  # as some editors write UTF-8
            del buffer[: len(BOM)]
            start = 0
        end = buffer.find(b"\n", start)
        while end >= 0:
            number += 1
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if line.strip():
                yield number, line
            end = buffer.find(b"\n")
        if len(buffer) > limit:
            raise _too_long(number + 1, limit)
        if not chunk:
            break
    if buffer.strip():
        yield number + 1, bytes(buffer)


def _too_long(number: int, limit: int) -> LlmeshError:
    return at_line(invalid("line", f"is larger than {limit} bytes"), number)


async def _translate(
    upload: UploadFile, settings: GatewaySettings, out: SpooledTemporaryFile[bytes]
) -> None:
    """Every line of `upload` translated into a `BatchItem` line, written to `out`; a bad
    line raises before anything is sent."""
    lines = FileLines(settings)
    pending = bytearray()
    async for number, raw in _lines(upload, settings.max_body_bytes):
        pending += item_json(lines.item(raw, number))
        if len(pending) >= UPLOAD_CHUNK:
            await run_in_threadpool(out.write, bytes(pending))
            pending.clear()
    if not lines.count:
        raise empty_file()
    await run_in_threadpool(out.write, bytes(pending))
    await run_in_threadpool(out.seek, 0)


async def _upload(
    upstream: Upstream,
    stub: batches_pb2_grpc.BatchServiceStub,
    upload: UploadFile,
    opts: CallOptions,
) -> batches_pb2.BatchFile:
    """Translate `upload` whole, then stream it to ``UploadBatchFile``; the stored file.

    A bad line is found before the call starts, so nothing of a bad file is ever sent:
    a call cut part way might otherwise look to the service like a shorter file."""
    with SpooledTemporaryFile(max_size=UPLOAD_CHUNK) as translated:  # on disk past a chunk
        await _translate(upload, upstream.settings, translated)
        return await _send(upstream, stub, upload.filename or "batch.jsonl", translated, opts)


async def _send(
    upstream: Upstream,
    stub: batches_pb2_grpc.BatchServiceStub,
    filename: str,
    translated: SpooledTemporaryFile[bytes],
    opts: CallOptions,
) -> batches_pb2.BatchFile:
    call = stub.UploadBatchFile(timeout=opts.timeout, metadata=opts.metadata)
    try:
        first = True
        while True:
            data = await run_in_threadpool(translated.read, UPLOAD_CHUNK)
            if not data and not first:
                break
            await call.write(
                batches_pb2.UploadBatchFileRequest(filename=filename if first else "", data=data)
            )
            first = False
        await call.done_writing()
        reply: batches_pb2.UploadBatchFileResponse = await call
    except asyncio.InvalidStateError:
        # the server ended the call before the whole file was sent: its status says why
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            raise upstream.error(exc) from None
        raise LlmeshError(Reason.INTERNAL, "the upload ended before the file was sent") from None
    except grpc.aio.AioRpcError as exc:
        raise upstream.error(exc) from None
    finally:
        call.cancel()
    return reply.file


async def retrieve_file(request: Request) -> Response:
    """``GET /v1/files/{file_id}``: an uploaded input file, or a batch's output or error
    file (its size counted from the results)."""
    file_id = request.path_params["file_id"]
    try:
        upstream, opts = _options(request)
        stub = batch_service(upstream)
        results = objects.results_file(file_id)
        if results is None:
            reply = await rpc(
                upstream,
                stub.GetBatchFile(
                    batches_pb2.GetBatchFileRequest(file_id=file_id),
                    timeout=opts.timeout,
                    metadata=opts.metadata,
                ),
            )
            return OrjsonResponse(objects.file_object(reply.file))
        batch_id, output = results
        batch = await _ended_batch(upstream, opts, file_id, batch_id, output)
        size = 0
        render = output_line if output else error_line
        async for result in stream_results(upstream, batch_id, opts):
            line = render(batch_id, result)
            size += len(line) if line else 0
        return OrjsonResponse(objects.output_file_object(file_id, batch, output, size))
    except LlmeshError as err:
        return _fail(err)


async def _ended_batch(
    upstream: Upstream, opts: CallOptions, file_id: str, batch_id: str, output: bool
) -> batches_pb2.Batch:
    """The batch of an output (or error) file; the file exists once the batch ended with
    results of its kind (as the batch object names it), else it is not found."""
    stub = batch_service(upstream)
    try:
        reply: batches_pb2.GetBatchResponse = await rpc(
            upstream,
            stub.GetBatch(
                batches_pb2.GetBatchRequest(batch_id=batch_id),
                timeout=opts.timeout,
                metadata=opts.metadata,
            ),
        )
    except LlmeshError as err:
        if err.reason is Reason.BATCH_NOT_FOUND:
            raise _no_file(file_id) from None
        raise
    batch = reply.batch
    named = objects.output_file_id(batch) if output else objects.error_file_id(batch)
    if named != file_id or batch.state not in FINAL_STATES:
        raise _no_file(file_id)
    return batch


async def file_content(request: Request) -> Response:
    """``GET /v1/files/{file_id}/content``: a batch's output or error file, streamed."""
    file_id = request.path_params["file_id"]
    try:
        upstream, opts = _options(request)
        results = objects.results_file(file_id)
        if results is None:
            stub = batch_service(upstream)
            await rpc(  # its own file (else not found), but input files are not downloadable
                upstream,
                stub.GetBatchFile(
                    batches_pb2.GetBatchFileRequest(file_id=file_id),
                    timeout=opts.timeout,
                    metadata=opts.metadata,
                ),
            )
            raise invalid("file_id", "not allowed to download files of purpose: batch")
        batch_id, output = results
        await _ended_batch(upstream, opts, file_id, batch_id, output)
    except LlmeshError as err:
        return _fail(err)
    render = output_line if output else error_line
    return UpstreamResponse(
        _content(upstream, opts, batch_id, render), media_type="application/jsonl"
    )


async def _content(
    upstream: Upstream,
    opts: CallOptions,
    batch_id: str,
    render: Callable[[str, batches_pb2.BatchItemResult], bytes | None],
) -> AsyncGenerator[Part, None]:
    """The file's lines as they are read; an error before the first line is an error
    response, a later one cuts the download (it never looks whole)."""
    started = False
    try:
        async for result in stream_results(upstream, batch_id, opts):
            line = render(batch_id, result)
            if line is not None:
                started = True
                yield line
    except LlmeshError as err:
        if started:
            raise
        yield _fail(err)


async def create_batch(request: Request) -> Response:
    """``POST /v1/batches``."""
    try:
        upstream, opts = _options(request)
        stub = batch_service(upstream)
        body = await read_json_object(request, upstream.settings.max_body_bytes)
        create = objects.create_request(body)
        reply = await rpc(
            upstream,
            stub.CreateBatch(create, timeout=opts.timeout, metadata=opts.metadata),
        )
    except LlmeshError as err:
        return _fail(err)
    return OrjsonResponse(objects.batch_object(reply.batch))


async def retrieve_batch(request: Request) -> Response:
    """``GET /v1/batches/{batch_id}``."""
    try:
        upstream, opts = _options(request)
        stub = batch_service(upstream)
        get = batches_pb2.GetBatchRequest(batch_id=request.path_params["batch_id"])
        reply = await rpc(
            upstream, stub.GetBatch(get, timeout=opts.timeout, metadata=opts.metadata)
        )
    except LlmeshError as err:
        return _fail(err)
    return OrjsonResponse(objects.batch_object(reply.batch))


async def cancel_batch(request: Request) -> Response:
    """``POST /v1/batches/{batch_id}/cancel``."""
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
    return OrjsonResponse(objects.batch_object(reply.batch))


def page_limit(raw: str | None, name: str = "limit") -> int:
    """A list call's page size: 1 to `MAX_PAGE`, 20 when absent."""
    if raw is None:
        return 20
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise invalid(name, f"must be an integer from 1 to {MAX_PAGE}")
    return int(raw)


async def list_batches(request: Request) -> Response:
    """``GET /v1/batches`` (``after``, ``limit``): the caller's batches, newest first."""
    try:
        upstream, opts = _options(request)
        limit = page_limit(request.query_params.get("limit"))
        after = request.query_params.get("after") or None
        batches, more = await page_after(upstream, opts, after, limit)
    except LlmeshError as err:
        return _fail(err)
    data = [objects.batch_object(b) for b in batches]
    return OrjsonResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
        }
    )


def routes() -> list[BaseRoute]:
    """The files and batches routes."""
    return [
        Route("/v1/files", create_file, methods=["POST"]),
        Route("/v1/files", list_files, methods=["GET"]),
        Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
        Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
        Route("/v1/batches", create_batch, methods=["POST"]),
        Route("/v1/batches", list_batches, methods=["GET"]),
        Route("/v1/batches/{batch_id}", retrieve_batch, methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
    ]
