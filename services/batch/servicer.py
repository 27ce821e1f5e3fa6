"""The gRPC face of batch jobs: proto -> store or executor -> proto.

Authentication, in-flight tracking and error answers are `rpc_guard`'s. A caller holding an
API key sees only its own tenant's batches and files (others answer BATCH_NOT_FOUND, as if
they did not exist); with authentication off, a batch belongs to the tenant its
``tenant`` metadata names (else ``default``) and every batch is visible.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator

from llmesh.services.batch.calls import ItemCalls
from llmesh.services.batch.convert import batch_to_proto, dead_to_proto, timestamp
from llmesh.services.batch.executor import BatchRunner
from llmesh.services.batch.items import check_items, fill_model, parse_jsonl
from llmesh.services.batch.model import (
    FINAL_STATES,
    BatchMode,
    BatchRow,
    BatchState,
    FileRow,
    ItemState,
)
from llmesh.services.batch.native_seam import NativeFactory
from llmesh.services.batch.store import BatchStore
from llmesh.services.common.batch_settings import BatchConfig
from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason, invalid
from llmesh.services.common.rpc_guard import Authenticates, Rpc, RpcGuard, unary, unary_stream
from llmesh.services.core.caller import Caller
from llmesh.v1 import batches_pb2, batches_pb2_grpc

__all__ = ["BatchServicer"]

log = logging.getLogger("llmesh.batch")

NATIVE_KINDS = frozenset({"openai", "anthropic"})
"""Provider kinds with a batch API of their own."""

_STREAM_PAGE = 256
_STREAM_POLL = 1.0
"""Seconds a results stream waits for news from another process before it looks again."""


def _not_found(what: str, name: str) -> LlmeshError:
    return LlmeshError(Reason.BATCH_NOT_FOUND, f"no {what} {name!r}", metadata={"resource": name})


def _conflict(batch: BatchRow, what: str) -> LlmeshError:
    return LlmeshError(
        Reason.BATCH_STATE_CONFLICT,
        f"batch {batch.batch_id} is {batch.state.value}: {what}",
        metadata={"state": batch.state.value},
    )


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=") if text else ""


def _untoken(token: str, field: str) -> str:
    if not token:
        return ""
    try:
        padded = token + "=" * (-len(token) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid(field, "is not a token this server gave") from None
    if not text:
        raise invalid(field, "is not a token this server gave")
    return text


class BatchServicer(batches_pb2_grpc.BatchServiceServicer):  # type: ignore[misc]
    """Implements `llmesh.v1.BatchService` over a `BatchStore` and a `BatchRunner`."""

    def __init__(
        self,
        store: BatchStore,
        runner: BatchRunner,
        calls: ItemCalls,
        settings: BatchConfig,
        *,
        authenticator: Authenticates,
        native: NativeFactory | None = None,
    ) -> None:
        self._store = store
        self._runner = runner
        self._calls = calls
        self._settings = settings
        self._native = native
        self.guard = RpcGuard(authenticator, log=log)
        """Its calls in flight (`drain` them at shutdown)."""

    # who sees what

    @staticmethod
    def _tenant(caller: Caller, named: str | None = None) -> str:
        if caller.key_id:
            return caller.tenant
        return named or caller.tenant

    async def _batch(self, batch_id: str, caller: Caller) -> BatchRow:
        row = await self._store.get(batch_id) if batch_id else None
        if row is None or (caller.key_id and row.tenant != caller.tenant):
            raise _not_found("batch", batch_id)
        return row

    async def _proto(self, row: BatchRow) -> batches_pb2.Batch:
        return batch_to_proto(row, await self._store.counts(row.batch_id))

    async def _reload(self, batch_id: str) -> batches_pb2.Batch:
        row = await self._store.get(batch_id)
        assert row is not None
        return await self._proto(row)

    # files

    @unary()
    async def UploadBatchFile(
        self, request: AsyncIterator[batches_pb2.UploadBatchFileRequest], rpc: Rpc
    ) -> batches_pb2.UploadBatchFileResponse:
        """Gather the chunks, check every line, store the file."""
        filename, size = "", 0
        chunks: list[bytes] = []
        async for chunk in request:
            if not chunks and not filename:
                filename = chunk.filename
            size += len(chunk.data)
            if size > self._settings.max_file_bytes:
                raise invalid("data", f"the file exceeds {self._settings.max_file_bytes} bytes")
            chunks.append(chunk.data)
        try:
            text = b"".join(chunks).decode("utf-8")
        except UnicodeDecodeError:
            raise invalid("data", "is not UTF-8 text") from None
        items = parse_jsonl(text, max_items=self._settings.max_items)
        row = FileRow(
            file_id="file-" + uuid.uuid4().hex,
            tenant=self._tenant(rpc.caller),
            filename=filename or "batch.jsonl",
            bytes=size,
            item_count=len(items),
            created_at=time.time(),
            content=text,
        )
        await self._store.put_file(row)
        return batches_pb2.UploadBatchFileResponse(file=_file_proto(row))

    @unary()
    async def GetBatchFile(
        self, request: batches_pb2.GetBatchFileRequest, rpc: Rpc
    ) -> batches_pb2.GetBatchFileResponse:
        """An uploaded file's description."""
        row = await self._file(request.file_id, rpc.caller, content=False)
        return batches_pb2.GetBatchFileResponse(file=_file_proto(row))

    @unary()
    async def ListBatchFiles(
        self, request: batches_pb2.ListBatchFilesRequest, rpc: Rpc
    ) -> batches_pb2.ListBatchFilesResponse:
        """A page of the caller's uploaded files, newest first."""
        size = request.page_size or 20
        if not 1 <= size <= 100:
            raise invalid("page_size", "must be between 1 and 100")
        before = _mark(_untoken(request.page_token, "page_token"))
        tenant = rpc.caller.tenant if rpc.caller.key_id else None
        rows = await self._store.list_files(tenant, before=before, limit=size + 1)
        out = batches_pb2.ListBatchFilesResponse(files=[_file_proto(r) for r in rows[:size]])
        if len(rows) > size:
            last = rows[size - 1]
            out.next_page_token = _token(f"{last.created_at!r}|{last.file_id}")
        return out

    @unary()
    async def DeleteBatchFile(
        self, request: batches_pb2.DeleteBatchFileRequest, rpc: Rpc
    ) -> batches_pb2.DeleteBatchFileResponse:
        """Delete one of the caller's uploaded files."""
        row = await self._file(request.file_id, rpc.caller, content=False)
        if not await self._store.delete_file(row.file_id):  # deleted meanwhile
            raise _not_found("batch file", row.file_id)
        return batches_pb2.DeleteBatchFileResponse(file_id=row.file_id)

    async def _file(self, file_id: str, caller: Caller, *, content: bool) -> FileRow:
        row = await self._store.get_file(file_id, content=content) if file_id else None
        if row is None or (caller.key_id and row.tenant != caller.tenant):
            raise _not_found("batch file", file_id)
        return row

    # batches

    @unary()
    async def CreateBatch(
        self, request: batches_pb2.CreateBatchRequest, rpc: Rpc
    ) -> batches_pb2.CreateBatchResponse:
        """Check every item, choose the mode, store the batch and wake the executor."""
        if bool(request.items) == bool(request.input_file_id):
            raise invalid("items", "give exactly one of items and input_file_id")
        if request.input_file_id:
            file = await self._file(request.input_file_id, rpc.caller, content=True)
            items = parse_jsonl(file.content, max_items=self._settings.max_items)
        else:
            items = list(request.items)
            if len(items) > self._settings.max_items:
                raise invalid("items", f"at most {self._settings.max_items} items per batch")
            check_items(items)
        for i, item in enumerate(items):
            if i % 500 == 499:
                await asyncio.sleep(0)  # a large batch's checks let other calls run
            fill_model(item, request.model.strip())
            try:
                self._calls.check(item)
            except LlmeshError as exc:
                where = f"items[{i}] (custom_id {item.custom_id!r})"
                exc.message = f"{where}: {exc.message}"
                exc.violations = tuple(
                    FieldViolation(f"items[{i}].{v.field}", v.description) for v in exc.violations
                )
                exc.metadata["custom_id"] = item.custom_id
                raise
        mode = self._mode(request.mode, items)
        metadata = dict(request.metadata)
        row = BatchRow(
            batch_id="batch-" + uuid.uuid4().hex,
            tenant=self._tenant(rpc.caller, metadata.get("tenant")),
            key_id=rpc.caller.key_id,
            state=BatchState.QUEUED,
            mode=mode,
            metadata=metadata,
            input_file_id=request.input_file_id,
            created_at=time.time(),
            total=len(items),
        )
        await self._store.create(row, [(i.custom_id, i.SerializeToString()) for i in items])
        self._runner.wake()
        return batches_pb2.CreateBatchResponse(batch=await self._proto(row))

    def _mode(self, asked: batches_pb2.BatchMode, items: list[batches_pb2.BatchItem]) -> BatchMode:
        if asked == batches_pb2.BATCH_MODE_MESH:
            return BatchMode.MESH
        native_ok = self._native is not None
        if native_ok:
            for item in items:
                target = self._calls.first_target(item)
                if target.kind not in NATIVE_KINDS or self._native(target.settings) is None:  # type: ignore[misc]
                    native_ok = False
                    break
        if asked == batches_pb2.BATCH_MODE_PROVIDER_NATIVE:
            if not native_ok:
                raise LlmeshError(
                    Reason.PROVIDER_NOT_CONFIGURED,
                    "provider-native mode needs every item's first target to be a provider "
                    "with a batch API (openai, anthropic) that this orchestrator can reach",
                )
            return BatchMode.PROVIDER_NATIVE
        return BatchMode.PROVIDER_NATIVE if native_ok else BatchMode.MESH

    @unary()
    async def GetBatch(
        self, request: batches_pb2.GetBatchRequest, rpc: Rpc
    ) -> batches_pb2.GetBatchResponse:
        """A batch with its counts."""
        row = await self._batch(request.batch_id, rpc.caller)
        return batches_pb2.GetBatchResponse(batch=await self._proto(row))

    @unary()
    async def ListBatches(
        self, request: batches_pb2.ListBatchesRequest, rpc: Rpc
    ) -> batches_pb2.ListBatchesResponse:
        """A page of the caller's batches, newest first."""
        size = request.page_size or 20
        if not 1 <= size <= 100:
            raise invalid("page_size", "must be between 1 and 100")
        before = _mark(_untoken(request.page_token, "page_token"))
        tenant = rpc.caller.tenant if rpc.caller.key_id else None
        rows = await self._store.list_batches(tenant, before=before, limit=size + 1)
        out = batches_pb2.ListBatchesResponse(batches=[await self._proto(r) for r in rows[:size]])
        if len(rows) > size:
            last = rows[size - 1]
            out.next_page_token = _token(f"{last.created_at!r}|{last.batch_id}")
        return out

    @unary()
    async def CancelBatch(
        self, request: batches_pb2.CancelBatchRequest, rpc: Rpc
    ) -> batches_pb2.CancelBatchResponse:
        """Stop starting items; the executor cancels the pending ones once the running
        ones end."""
        row = await self._batch(request.batch_id, rpc.caller)
        if row.state in FINAL_STATES:
            raise _conflict(row, "only an unfinished batch can be cancelled")
        moved = await self._store.set_state(
            row.batch_id,
            BatchState.CANCELLING,
            expect=frozenset(
                {
                    BatchState.VALIDATING,
                    BatchState.QUEUED,
                    BatchState.IN_PROGRESS,
                    BatchState.PAUSED_BUDGET,
                    BatchState.CANCELLING,
                }
            ),
        )
        if not moved:  # it finished meanwhile
            row = await self._batch(request.batch_id, rpc.caller)
            raise _conflict(row, "only an unfinished batch can be cancelled")
        self._runner.wake()
        self._runner.changes.notify(row.batch_id)
        return batches_pb2.CancelBatchResponse(batch=await self._reload(row.batch_id))

    @unary()
    async def ResumeBatch(
        self, request: batches_pb2.ResumeBatchRequest, rpc: Rpc
    ) -> batches_pb2.ResumeBatchResponse:
        """Queue a batch its budget paused again."""
        row = await self._batch(request.batch_id, rpc.caller)
        moved = await self._store.set_state(
            row.batch_id,
            BatchState.QUEUED,
            expect=frozenset({BatchState.PAUSED_BUDGET}),
            detail="",
        )
        if not moved:
            raise _conflict(row, "only a batch paused by its budget can be resumed")
        self._runner.wake()
        self._runner.changes.notify(row.batch_id)
        return batches_pb2.ResumeBatchResponse(batch=await self._reload(row.batch_id))

    @unary()
    async def ListDeadLetters(
        self, request: batches_pb2.ListDeadLettersRequest, rpc: Rpc
    ) -> batches_pb2.ListDeadLettersResponse:
        """A page of a batch's dead items, with their last error and trail."""
        row = await self._batch(request.batch_id, rpc.caller)
        size = request.page_size or 100
        if not 1 <= size <= 1000:
            raise invalid("page_size", "must be between 1 and 1000")
        after = _untoken(request.page_token, "page_token")
        rows = await self._store.dead_letters(row.batch_id, after, size + 1)
        out = batches_pb2.ListDeadLettersResponse(
            dead_letters=[dead_to_proto(r) for r in rows[:size]]
        )
        if len(rows) > size:
            out.next_page_token = _token(rows[size - 1].custom_id)
        return out

    @unary()
    async def RetryDeadLetters(
        self, request: batches_pb2.RetryDeadLettersRequest, rpc: Rpc
    ) -> batches_pb2.RetryDeadLettersResponse:
        """Put one dead item, or all, back to pending; the batch runs again."""
        if bool(request.custom_id) == request.all:
            raise invalid("custom_id", "give exactly one of custom_id and all")
        row = await self._batch(request.batch_id, rpc.caller)
        if row.state in (BatchState.CANCELLED, BatchState.CANCELLING):
            raise _conflict(row, "a cancelled batch's dead letters cannot be retried")
        if request.custom_id:
            state = await self._store.item_state(row.batch_id, request.custom_id)
            if state is not ItemState.DEAD:
                what = "no such item" if state is None else f"the item is {state.value}"
                raise invalid("custom_id", f"{request.custom_id!r} is not a dead letter ({what})")
        retried = await self._store.retry_dead(
            row.batch_id, request.custom_id if request.custom_id else None
        )
        if retried:
            await self._store.set_state(
                row.batch_id,
                BatchState.QUEUED,
                expect=frozenset(
                    {
                        BatchState.COMPLETED,
                        BatchState.FAILED,
                        BatchState.EXPIRED,
                        BatchState.PAUSED_BUDGET,
                    }
                ),
                detail="",
                reopen=True,
            )
            self._runner.wake()
            self._runner.changes.notify(row.batch_id)
        return batches_pb2.RetryDeadLettersResponse(
            retried=retried, batch=await self._reload(row.batch_id)
        )

    # results

    @unary_stream(lambda event: event)
    def StreamBatchResults(
        self, request: batches_pb2.StreamBatchResultsRequest, rpc: Rpc
    ) -> AsyncGenerator[batches_pb2.StreamBatchResultsResponse, None]:
        """Results after the cursor as they are written; `finished` once the batch is."""
        return self._results(request, rpc.caller)

    async def _results(
        self, request: batches_pb2.StreamBatchResultsRequest, caller: Caller
    ) -> AsyncGenerator[batches_pb2.StreamBatchResultsResponse, None]:
        cursor = 0
        if request.cursor:
            if not request.cursor.isdigit():
                raise invalid("cursor", "is not a cursor this server gave")
            cursor = int(request.cursor)
        row = await self._batch(request.batch_id, caller)
        batch_id = row.batch_id
        shown: BatchState | None = None
        while True:
            current = await self._store.get(batch_id)
            if current is None:
                raise _not_found("batch", batch_id)
            rows = await self._store.results_after(batch_id, cursor, _STREAM_PAGE)
            for seq, data in rows:
                cursor = seq
                yield batches_pb2.StreamBatchResultsResponse(
                    cursor=str(seq), result=batches_pb2.BatchItemResult.FromString(data)
                )
            if rows:
                continue
            if current.state in FINAL_STATES:
                yield batches_pb2.StreamBatchResultsResponse(
                    cursor=str(cursor),
                    finished=batches_pb2.BatchFinished(batch=await self._proto(current)),
                )
                return
            if current.state is not shown and (
                shown is not None or current.state is BatchState.PAUSED_BUDGET
            ):
                yield batches_pb2.StreamBatchResultsResponse(
                    cursor=str(cursor), progress=await self._proto(current)
                )
            shown = current.state
            await self._runner.changes.wait(batch_id, _STREAM_POLL)


def _file_proto(row: FileRow) -> batches_pb2.BatchFile:
    out = batches_pb2.BatchFile(
        id=row.file_id, filename=row.filename, bytes=row.bytes, item_count=row.item_count
    )
    out.created_at.CopyFrom(timestamp(row.created_at))
    return out


def _mark(mark: str) -> tuple[float, str] | None:
    """The (created_at, id) a page token's text marks, or None for the first page."""
    if not mark:
        return None
    stamp, _, row_id = mark.partition("|")
    try:
        return (float(stamp), row_id)
    except ValueError:
        raise invalid("page_token", "is not a token this server gave") from None
