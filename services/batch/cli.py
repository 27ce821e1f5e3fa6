"""``llmesh batch``: submit a JSONL file of items, follow a batch, fetch its results.

``submit FILE.jsonl`` uploads the file (one `BatchItem` per line, proto3 JSON) and creates
a batch, ``--wait`` showing a progress bar until it ends; ``status``, ``results`` (JSONL,
one `BatchItemResult` per line, to ``--out`` or stdout), ``cancel``, ``dead`` (the dead
letters as JSONL), ``retry-dead`` and ``resume`` act on a batch by id. Exit status: 0
when the command did what it says (a waited-for batch completed), 1 otherwise, with the
error's reason on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import grpc
from google.protobuf import json_format
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from llmesh.services.common.rpc_errors import Peer, from_rpc_error
from llmesh.services.common.tls import channel
from llmesh.services.common.tls_settings import TlsSettings
from llmesh.v1 import batches_pb2, batches_pb2_grpc

__all__ = ["add_batch_parser", "batch_command"]

CHUNK = 1 << 20
"""Bytes per upload message."""

_MODES = {
    "auto": batches_pb2.BATCH_MODE_AUTO,
    "mesh": batches_pb2.BATCH_MODE_MESH,
    "native": batches_pb2.BATCH_MODE_PROVIDER_NATIVE,
}
_FINAL = frozenset(
    {
        batches_pb2.BATCH_STATE_COMPLETED,
        batches_pb2.BATCH_STATE_CANCELLED,
        batches_pb2.BATCH_STATE_FAILED,
        batches_pb2.BATCH_STATE_EXPIRED,
    }
)


def add_batch_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """The ``batch`` command and its subcommands; `common` adds the shared options
    (``--api-key``) to each."""
    batch = sub.add_parser("batch", help="run many calls as one durable batch job")
    actions = batch.add_subparsers(dest="action", required=True)
    submit = actions.add_parser("submit", help="upload a JSONL file of items and run it")
    submit.add_argument("file", type=Path)
    submit.add_argument("--model", default="", help="the model of items that name none")
    submit.add_argument("--mode", choices=sorted(_MODES), default="auto")
    submit.add_argument(
        "--metadata", action="append", default=[], metavar="KEY=VALUE", help="a label (repeat)"
    )
    submit.add_argument("--wait", action="store_true", help="show progress until it ends")
    status = actions.add_parser("status", help="a batch's state and counts")
    results = actions.add_parser("results", help="a batch's results as JSONL")
    results.add_argument("--out", type=Path, help="write to this file (default: stdout)")
    cancel = actions.add_parser("cancel", help="cancel a batch")
    dead = actions.add_parser("dead", help="a batch's dead letters as JSONL, with their trail")
    retry = actions.add_parser("retry-dead", help="run a batch's dead letters again")
    retry.add_argument("--custom-id", help="only this item (default: every dead letter)")
    resume = actions.add_parser("resume", help="resume a batch its budget paused")
    for command in (submit, status, results, cancel, dead, retry, resume):
        if command is not submit:
            command.add_argument("batch_id")
        command.add_argument("--address", help="orchestrator address (default: configuration)")
        common(command)


def _state(batch: batches_pb2.Batch) -> str:
    name: str = batches_pb2.BatchState.Name(batch.state)
    return name.removeprefix("BATCH_STATE_").lower()


def describe(batch: batches_pb2.Batch) -> str:
    """A batch in one line: id, state, counts, and why it stands there."""
    c = batch.counts
    line = (
        f"{batch.id} {_state(batch)}: {c.completed}/{c.total} completed, {c.failed} failed, "
        f"{c.dead} dead, {c.pending} pending, {c.cancelled} cancelled"
    )
    return f"{line} ({batch.status_detail})" if batch.status_detail else line


def _chunks(name: str, data: bytes) -> Iterator[batches_pb2.UploadBatchFileRequest]:
    yield batches_pb2.UploadBatchFileRequest(filename=name, data=data[:CHUNK])
    for start in range(CHUNK, len(data), CHUNK):
        yield batches_pb2.UploadBatchFileRequest(data=data[start : start + CHUNK])


async def _wait(
    stub: batches_pb2_grpc.BatchServiceStub,
    batch: batches_pb2.Batch,
    metadata: tuple[tuple[str, str], ...],
    interval: float,
) -> batches_pb2.Batch:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=None, transient=False) as bar:
        task = bar.add_task(batch.id, total=batch.counts.total)
        while True:
            c = batch.counts
            bar.update(
                task,
                completed=c.completed + c.failed + c.dead + c.cancelled,
                description=f"{batch.id} {_state(batch)}",
            )
            if batch.state in _FINAL or batch.state == batches_pb2.BATCH_STATE_PAUSED_BUDGET:
                return batch
            await asyncio.sleep(interval)
            request = batches_pb2.GetBatchRequest(batch_id=batch.id)
            batch = (await stub.GetBatch(request, metadata=metadata, timeout=30)).batch


async def _results(
    stub: batches_pb2_grpc.BatchServiceStub,
    batch_id: str,
    metadata: tuple[tuple[str, str], ...],
    out: IO[str],
) -> batches_pb2.Batch:
    request = batches_pb2.StreamBatchResultsRequest(batch_id=batch_id)
    while True:  # a cut stream resumes after the last result written
        try:
            async for event in stub.StreamBatchResults(request, metadata=metadata):
                kind = event.WhichOneof("event")
                if kind == "result":
                    out.write(json_format.MessageToJson(event.result, indent=None) + "\n")
                    request.cursor = event.cursor
                elif kind == "finished":
                    finished: batches_pb2.Batch = event.finished.batch
                    return finished
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.UNAVAILABLE:
                raise
            await asyncio.sleep(1.0)


async def batch_command(
    args: argparse.Namespace,
    address: str,
    *,
    api_key: str | None,
    tls: TlsSettings | None = None,
    poll_interval: float = 1.0,
) -> int:
    """Run one ``llmesh batch`` action against the orchestrator at `address`."""
    metadata: tuple[tuple[str, str], ...] = (
        (("authorization", f"Bearer {api_key}"),) if api_key else ()
    )
    peer = Peer("orchestrator", address, "--address or orchestrator.address")
    async with channel(address, tls, "CLI") as ch:
        stub = batches_pb2_grpc.BatchServiceStub(ch)
        try:
            return await _act(stub, args, metadata, poll_interval)
        except grpc.RpcError as exc:
            err = from_rpc_error(exc, peer)
            print(f"llmesh batch: {err.reason.value}: {err.message}", file=sys.stderr)
            return 1
        except (OSError, ValueError) as exc:
            print(f"llmesh batch: {exc}", file=sys.stderr)
            return 1


async def _act(
    stub: batches_pb2_grpc.BatchServiceStub,
    args: argparse.Namespace,
    metadata: tuple[tuple[str, str], ...],
    poll_interval: float,
) -> int:
    action = args.action
    if action == "submit":
        labels = {}
        for pair in args.metadata:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ValueError(f"--metadata {pair!r}: expected KEY=VALUE")
            labels[key] = value
        data = await asyncio.to_thread(args.file.read_bytes)
        upload = _chunks(args.file.name, data)
        file = (await stub.UploadBatchFile(upload, metadata=metadata)).file
        created = await stub.CreateBatch(
            batches_pb2.CreateBatchRequest(
                input_file_id=file.id, model=args.model, mode=_MODES[args.mode], metadata=labels
            ),
            metadata=metadata,
        )
        batch = created.batch
        print(batch.id, flush=True)
        if not args.wait:
            return 0
        batch = await _wait(stub, batch, metadata, poll_interval)
        print(describe(batch))
        return 0 if batch.state == batches_pb2.BATCH_STATE_COMPLETED else 1
    if action == "status":
        got = await stub.GetBatch(
            batches_pb2.GetBatchRequest(batch_id=args.batch_id), metadata=metadata
        )
        print(describe(got.batch))
        return 0
    if action == "results":
        if args.out is None:
            batch = await _results(stub, args.batch_id, metadata, sys.stdout)
        else:
            with args.out.open("w") as out:
                batch = await _results(stub, args.batch_id, metadata, out)
        print(describe(batch), file=sys.stderr)
        return 0
    if action == "cancel":
        request = batches_pb2.CancelBatchRequest(batch_id=args.batch_id)
        print(describe((await stub.CancelBatch(request, metadata=metadata)).batch))
        return 0
    if action == "dead":
        token = ""
        while True:
            page = await stub.ListDeadLetters(
                batches_pb2.ListDeadLettersRequest(batch_id=args.batch_id, page_token=token),
                metadata=metadata,
            )
            for letter in page.dead_letters:
                print(json_format.MessageToJson(letter, indent=None))
            token = page.next_page_token
            if not token:
                return 0
    if action == "retry-dead":
        retry = batches_pb2.RetryDeadLettersRequest(batch_id=args.batch_id)
        if args.custom_id:
            retry.custom_id = args.custom_id
        else:
            retry.all = True
        answer = await stub.RetryDeadLetters(retry, metadata=metadata)
        print(f"{answer.retried} item(s) retried; {describe(answer.batch)}")
        return 0
    request_resume = batches_pb2.ResumeBatchRequest(batch_id=args.batch_id)
    print(describe((await stub.ResumeBatch(request_resume, metadata=metadata)).batch))
    return 0
