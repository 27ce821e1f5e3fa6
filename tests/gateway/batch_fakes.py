"""A fake BatchService for the gateway's batch routes: in memory, on a real `grpc.aio` server.

Each caller's ``authorization`` value is its tenant: another tenant's files and batches are
BATCH_NOT_FOUND, as in the real service. A batch runs its items in a task: a chat item is
answered ``echo: <last message>`` (an item whose model is `FAIL_MODEL` fails with
UPSTREAM_INVALID_REQUEST), an embeddings item gets one vector per input, in the encoding
asked for. While `FakeBatches.hold` is set, items wait, so a test can cancel a running batch.
`cut_after` ends result streams with UNAVAILABLE after that many results, once (every
time with `cut_always`).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format

from llmesh.services.common.errors import LlmeshError, Reason, invalid
from llmesh.services.common.grpc_server import RunningServer, ServiceBinding, start_server
from llmesh.services.common.rpc_errors import abort
from llmesh.v1 import (
    batches_pb2,
    batches_pb2_grpc,
    chat_pb2,
    embeddings_pb2,
    errors_pb2,
    orchestrator_pb2,
)

Context = grpc.aio.ServicerContext[Any, Any]
FAIL_MODEL = "fail-model"
"""Chat items naming this model fail (UPSTREAM_INVALID_REQUEST, a 400)."""
FINAL = frozenset(
    {
        batches_pb2.BATCH_STATE_COMPLETED,
        batches_pb2.BATCH_STATE_CANCELLED,
        batches_pb2.BATCH_STATE_FAILED,
        batches_pb2.BATCH_STATE_EXPIRED,
    }
)


def vector(index: int) -> list[float]:
    """The fake embedding of input `index`."""
    return [float(index), 0.5, -1.0]


@dataclass
class _Batch:
    tenant: str
    batch: batches_pb2.Batch
    items: list[batches_pb2.BatchItem]
    results: list[batches_pb2.BatchItemResult] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class FakeBatches(batches_pb2_grpc.BatchServiceServicer):  # type: ignore[misc]
    """In-memory BatchService."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, batches_pb2.BatchFile, list[batches_pb2.BatchItem]]] = {}
        self.batches: dict[str, _Batch] = {}
        self.uploads: list[bytes] = []
        """Every uploaded file's bytes, as received."""
        self.chunks: list[int] = []
        """How many messages each upload came in."""
        self.created: list[batches_pb2.CreateBatchRequest] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.cut_after: int | None = None
        self.cut_always = False
        """Cut at `cut_after` every time, not once."""
        self._count = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def _id(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}-{self._count:04d}"

    @staticmethod
    def _tenant(context: Context) -> str:
        return dict(context.invocation_metadata() or ()).get("authorization", "")

    async def _own(self, batch_id: str, context: Context) -> _Batch:
        entry = self.batches.get(batch_id)
        if entry is None or entry.tenant != self._tenant(context):
            await abort(context, LlmeshError(Reason.BATCH_NOT_FOUND, f"no batch {batch_id!r}"))
        assert entry is not None
        return entry

    async def UploadBatchFile(
        self, request: AsyncIterator[batches_pb2.UploadBatchFileRequest], context: Context
    ) -> batches_pb2.UploadBatchFileResponse:
        filename, data, chunks = "", b"", 0
        async for chunk in request:
            filename = filename or chunk.filename
            data += chunk.data
            chunks += 1
        self.uploads.append(data)
        self.chunks.append(chunks)
        items = [
            json_format.Parse(line, batches_pb2.BatchItem())
            for line in data.decode().splitlines()
            if line.strip()
        ]
        file = batches_pb2.BatchFile(
            id=self._id("file"), filename=filename, bytes=len(data), item_count=len(items)
        )
        file.created_at.GetCurrentTime()
        self.files[file.id] = (self._tenant(context), file, items)
        return batches_pb2.UploadBatchFileResponse(file=file)

    async def GetBatchFile(
        self, request: batches_pb2.GetBatchFileRequest, context: Context
    ) -> batches_pb2.GetBatchFileResponse:
        entry = self.files.get(request.file_id)
        if entry is None or entry[0] != self._tenant(context):
            await abort(context, LlmeshError(Reason.BATCH_NOT_FOUND, "no such file"))
        assert entry is not None
        return batches_pb2.GetBatchFileResponse(file=entry[1])

    async def CreateBatch(
        self, request: batches_pb2.CreateBatchRequest, context: Context
    ) -> batches_pb2.CreateBatchResponse:
        self.created.append(request)
        tenant = self._tenant(context)
        if request.input_file_id:
            file = self.files.get(request.input_file_id)
            if file is None or file[0] != tenant:
                await abort(context, LlmeshError(Reason.BATCH_NOT_FOUND, "no such file"))
            assert file is not None
            items = list(file[2])
        elif request.items:
            items = list(request.items)
        else:
            await abort(context, invalid("items", "give exactly one of items and input_file_id"))
        batch = batches_pb2.Batch(
            id=self._id("batch"),
            state=batches_pb2.BATCH_STATE_IN_PROGRESS,
            mode=batches_pb2.BATCH_MODE_MESH,
            counts=batches_pb2.BatchCounts(total=len(items), pending=len(items)),
            metadata=request.metadata,
            tenant=tenant,
            input_file_id=request.input_file_id,
        )
        batch.created_at.FromSeconds(int(time.time()) + self._count)  # newest has the largest
        batch.started_at.CopyFrom(batch.created_at)
        entry = _Batch(tenant, batch, items)
        self.batches[batch.id] = entry
        task = asyncio.ensure_future(self._run(entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return batches_pb2.CreateBatchResponse(batch=batch)

    async def _run(self, entry: _Batch) -> None:
        for item in entry.items:
            await self.hold.wait()
            if entry.batch.state != batches_pb2.BATCH_STATE_IN_PROGRESS:
                return
            result = _result(item)
            async with entry.changed:
                counts = entry.batch.counts
                counts.pending -= 1
                if result.state == batches_pb2.BATCH_ITEM_STATE_SUCCEEDED:
                    counts.completed += 1
                else:
                    counts.failed += 1
                entry.results.append(result)
                entry.changed.notify_all()
        async with entry.changed:
            self._end(entry, batches_pb2.BATCH_STATE_COMPLETED)

    @staticmethod
    def _end(entry: _Batch, state: batches_pb2.BatchState) -> None:
        entry.batch.state = state
        entry.batch.finished_at.GetCurrentTime()
        entry.changed.notify_all()

    async def GetBatch(
        self, request: batches_pb2.GetBatchRequest, context: Context
    ) -> batches_pb2.GetBatchResponse:
        return batches_pb2.GetBatchResponse(
            batch=(await self._own(request.batch_id, context)).batch
        )

    async def ListBatches(
        self, request: batches_pb2.ListBatchesRequest, context: Context
    ) -> batches_pb2.ListBatchesResponse:
        tenant = self._tenant(context)
        mine = [b.batch for b in reversed(self.batches.values()) if b.tenant == tenant]
        start = int(request.page_token or 0)
        size = request.page_size or 20
        out = batches_pb2.ListBatchesResponse(batches=mine[start : start + size])
        if start + size < len(mine):
            out.next_page_token = str(start + size)
        return out

    async def CancelBatch(
        self, request: batches_pb2.CancelBatchRequest, context: Context
    ) -> batches_pb2.CancelBatchResponse:
        entry = await self._own(request.batch_id, context)
        if entry.batch.state in FINAL:
            await abort(context, LlmeshError(Reason.BATCH_STATE_CONFLICT, "the batch ended"))
        async with entry.changed:
            counts = entry.batch.counts
            counts.cancelled, counts.pending = counts.pending, 0
            self._end(entry, batches_pb2.BATCH_STATE_CANCELLED)
        return batches_pb2.CancelBatchResponse(batch=entry.batch)

    async def StreamBatchResults(
        self, request: batches_pb2.StreamBatchResultsRequest, context: Context
    ) -> AsyncIterator[batches_pb2.StreamBatchResultsResponse]:
        entry = await self._own(request.batch_id, context)
        sent = int(request.cursor or 0)
        while True:
            async with entry.changed:
                while len(entry.results) <= sent and entry.batch.state not in FINAL:
                    await entry.changed.wait()
                fresh = entry.results[sent:]
                final = entry.batch.state in FINAL
            for result in fresh:
                if self.cut_after is not None and sent == self.cut_after:
                    if not self.cut_always:
                        self.cut_after = None
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
                sent += 1
                yield batches_pb2.StreamBatchResultsResponse(cursor=str(sent), result=result)
            if final and sent == len(entry.results):
                yield batches_pb2.StreamBatchResultsResponse(
                    cursor=str(sent), finished=batches_pb2.BatchFinished(batch=entry.batch)
                )
                return


def _result(item: batches_pb2.BatchItem) -> batches_pb2.BatchItemResult:
    out = batches_pb2.BatchItemResult(
        custom_id=item.custom_id, state=batches_pb2.BATCH_ITEM_STATE_SUCCEEDED, attempts=1
    )
    out.finished_at.FromSeconds(1_700_000_000)
    if item.HasField("chat"):
        chat = item.chat
        if chat.model == FAIL_MODEL:
            out.state = batches_pb2.BATCH_ITEM_STATE_FAILED
            out.error.CopyFrom(
                batches_pb2.BatchItemError(
                    reason=errors_pb2.ERROR_REASON_UPSTREAM_INVALID_REQUEST,
                    message="the provider refused the request",
                    metadata={"request_id": f"req-{item.custom_id}"},
                )
            )
            return out
        out.chat.CopyFrom(
            orchestrator_pb2.ChatResponse(
                request_id=f"req-{item.custom_id}",
                provider="fake",
                model=chat.model,
                message=chat_pb2.Message(
                    role=chat_pb2.ROLE_ASSISTANT, content=f"echo: {chat.messages[-1].content}"
                ),
                finish_reason=chat_pb2.FINISH_REASON_STOP,
                usage=chat_pb2.Usage(input_tokens=7, output_tokens=3),
            )
        )
        return out
    embed = item.embed
    reply = embeddings_pb2.EmbedResponse(
        request_id=f"req-{item.custom_id}",
        provider="fake",
        model=embed.model,
        usage=chat_pb2.Usage(input_tokens=len(embed.inputs)),
    )
    for i in range(len(embed.inputs)):
        if embed.encoding == embeddings_pb2.EMBEDDING_ENCODING_BASE64:
            packed = struct.pack(f"<{len(vector(i))}f", *vector(i))
            reply.embeddings.add(index=i, data=packed)
        else:
            reply.embeddings.add(index=i, values=vector(i))
    out.embed.CopyFrom(reply)
    return out


@dataclass
class FakeBatchServer:
    """The fake and the server it runs on."""

    service: FakeBatches
    running: RunningServer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"


async def start_fake_batches() -> FakeBatchServer:
    """The fake BatchService on a real gRPC server on an ephemeral port."""
    service = FakeBatches()
    running = await start_server(
        [
            ServiceBinding(
                batches_pb2_grpc.add_BatchServiceServicer_to_server,
                service,
                "llmesh.v1.BatchService",
            )
        ],
        "127.0.0.1:0",
    )
    return FakeBatchServer(service, running)
