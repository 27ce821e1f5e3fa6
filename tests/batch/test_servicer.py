"""BatchService over gRPC on a real orchestrator and the emulator: create, stream results
with cursor resume, files, errors, cancel, dead letters, and resuming after a restart on
the same database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import grpc
import httpx
import pytest

from llmesh.services.common.batch_settings import BatchConfig
from llmesh.services.common.config import Config
from llmesh.services.common.errors import Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.ledger import open_store
from llmesh.services.orchestrator.server import OrchestratorServer, serve
from llmesh.v1 import batches_pb2, batches_pb2_grpc
from tests.batch.conftest import chat_item
from tests.batch.test_executor import wait_for
from tests.support.mesh import Mesh


def _config(mesh: Mesh, tmp_path: Path, **batch: object) -> Config:
    assert mesh.config is not None
    settings = BatchConfig(**{"retry_backoff": 0.0, "poll_interval": 0.1, **batch})  # type: ignore[arg-type]
    return replace(mesh.config, database_url=f"sqlite:///{tmp_path}/ledger.db", batch=settings)


@pytest.fixture
async def server(mesh: Mesh, tmp_path: Path) -> AsyncIterator[OrchestratorServer]:
    s = await serve(_config(mesh, tmp_path), address="127.0.0.1:0", env=mesh.env())
    try:
        yield s
    finally:
        await s.stop(1)


async def _clear_fault(mesh: Mesh, model: str) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.delete(f"{mesh.emulator_url}/emulator/faults", params={"model": model})
        r.raise_for_status()


async def _stub(port: int) -> tuple[grpc.aio.Channel, batches_pb2_grpc.BatchServiceStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return channel, batches_pb2_grpc.BatchServiceStub(channel)


async def _collect(
    stub: batches_pb2_grpc.BatchServiceStub, batch_id: str, cursor: str = ""
) -> tuple[list[batches_pb2.StreamBatchResultsResponse], batches_pb2.Batch]:
    events = []
    request = batches_pb2.StreamBatchResultsRequest(batch_id=batch_id, cursor=cursor)
    async for event in stub.StreamBatchResults(request, timeout=60):
        events.append(event)
        if event.WhichOneof("event") == "finished":
            return events, event.finished.batch
    raise AssertionError("the stream ended without its finished event")


def _ids(events: Sequence[batches_pb2.StreamBatchResultsResponse]) -> list[str]:
    return [e.result.custom_id for e in events if e.WhichOneof("event") == "result"]


async def test_a_batch_runs_and_streams_every_result_once(
    server: OrchestratorServer, tmp_path: Path
) -> None:
    channel, stub = await _stub(server.port)
    async with channel:
        items = [chat_item(f"q{i}", f"question {i}") for i in range(25)]
        created = await stub.CreateBatch(
            batches_pb2.CreateBatchRequest(items=items, metadata={"job": "t"})
        )
        batch = created.batch
        assert batch.mode == batches_pb2.BATCH_MODE_MESH
        assert batch.counts.total == 25 and batch.metadata["job"] == "t"
        events, final = await _collect(stub, batch.id)
        assert sorted(_ids(events)) == sorted(i.custom_id for i in items)
        assert final.state == batches_pb2.BATCH_STATE_COMPLETED
        assert final.counts.completed == 25 and final.counts.pending == 0
        first = next(e.result for e in events if e.WhichOneof("event") == "result")
        assert first.chat.message.content  # the emulator's echo
        got = await stub.GetBatch(batches_pb2.GetBatchRequest(batch_id=batch.id))
        assert got.batch.state == batches_pb2.BATCH_STATE_COMPLETED
        listed = await stub.ListBatches(batches_pb2.ListBatchesRequest())
        assert [b.id for b in listed.batches] == [batch.id]
    # every item went through the call path at the batch tier: one ledger row each
    ledger = open_store(f"sqlite:///{tmp_path}/ledger.db")

    async def all_recorded() -> bool:
        return await ledger.count() == 25

    try:
        await wait_for(all_recorded, "25 ledger rows")
    finally:
        await ledger.aclose()
    conn = sqlite3.connect(tmp_path / "ledger.db")
    rows = conn.execute("SELECT priority, metadata FROM usage_records").fetchall()
    conn.close()
    assert {priority for priority, _ in rows} == {"batch"}
    labels = [json.loads(metadata) for _, metadata in rows]
    assert {m["batch_id"] for m in labels} == {batch.id}
    assert sorted(m["custom_id"] for m in labels) == sorted(i.custom_id for i in items)


async def test_the_stream_resumes_after_its_cursor(server: OrchestratorServer) -> None:
    channel, stub = await _stub(server.port)
    async with channel:
        items = [chat_item(f"q{i}") for i in range(12)]
        batch = (await stub.CreateBatch(batches_pb2.CreateBatchRequest(items=items))).batch
        first, _ = await _collect(stub, batch.id)
        cut = first[4]  # as if the connection broke after the fifth event
        rest, final = await _collect(stub, batch.id, cursor=cut.cursor)
        assert _ids(first[:5]) + _ids(rest) == _ids(first)
        assert final.state == batches_pb2.BATCH_STATE_COMPLETED
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await _collect(stub, batch.id, cursor="not-a-cursor")
        assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_files_upload_in_chunks_and_feed_a_batch(server: OrchestratorServer) -> None:
    from google.protobuf import json_format

    lines = []
    for i in range(6):
        item = chat_item(f"f{i}", f"line {i}", model="")
        lines.append(json_format.MessageToJson(item, indent=None))
    data = ("\n".join(lines) + "\n").encode()

    async def chunks() -> AsyncIterator[batches_pb2.UploadBatchFileRequest]:
        yield batches_pb2.UploadBatchFileRequest(filename="in.jsonl", data=data[:50])
        yield batches_pb2.UploadBatchFileRequest(data=data[50:])

    channel, stub = await _stub(server.port)
    async with channel:
        file = (await stub.UploadBatchFile(chunks())).file
        assert (file.filename, file.item_count, file.bytes) == ("in.jsonl", 6, len(data))
        got = await stub.GetBatchFile(batches_pb2.GetBatchFileRequest(file_id=file.id))
        assert got.file.id == file.id
        batch = (
            await stub.CreateBatch(
                batches_pb2.CreateBatchRequest(input_file_id=file.id, model="emulator/echo")
            )
        ).batch
        assert batch.input_file_id == file.id
        events, _ = await _collect(stub, batch.id)
        assert sorted(_ids(events)) == [f"f{i}" for i in range(6)]

        async def bad_file() -> AsyncIterator[batches_pb2.UploadBatchFileRequest]:
            yield batches_pb2.UploadBatchFileRequest(data=b'{"custom_id": "x"}\nnot json\n')

        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.UploadBatchFile(bad_file())
        assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "line 2" in (bad.value.details() or "")


async def test_requests_that_cannot_be_served_are_refused_clearly(
    server: OrchestratorServer,
) -> None:
    channel, stub = await _stub(server.port)
    async with channel:

        async def refused(call: object) -> tuple[grpc.StatusCode, Reason, str]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call  # type: ignore[misc]
            err = from_rpc_error(caught.value)
            return caught.value.code(), err.reason, err.message

        dup = stub.CreateBatch(
            batches_pb2.CreateBatchRequest(items=[chat_item("same"), chat_item("same")])
        )
        code, reason, message = await refused(dup)
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, Reason.INVALID_REQUEST)
        assert "'same'" in message
        unknown_model = stub.CreateBatch(
            batches_pb2.CreateBatchRequest(items=[chat_item("a", model="nobody/none")])
        )
        code, reason, message = await refused(unknown_model)
        assert reason is Reason.MODEL_NOT_FOUND and "'a'" in message
        both = stub.CreateBatch(
            batches_pb2.CreateBatchRequest(items=[chat_item("a")], input_file_id="file-x")
        )
        assert (await refused(both))[0] is grpc.StatusCode.INVALID_ARGUMENT
        missing = stub.GetBatch(batches_pb2.GetBatchRequest(batch_id="batch-nope"))
        assert (await refused(missing))[:2] == (grpc.StatusCode.NOT_FOUND, Reason.BATCH_NOT_FOUND)
        no_file = stub.CreateBatch(batches_pb2.CreateBatchRequest(input_file_id="file-nope"))
        assert (await refused(no_file))[1] is Reason.BATCH_NOT_FOUND
        native = stub.CreateBatch(
            batches_pb2.CreateBatchRequest(
                items=[chat_item("a")], mode=batches_pb2.BATCH_MODE_PROVIDER_NATIVE
            )
        )
        assert (await refused(native))[1] is Reason.PROVIDER_NOT_CONFIGURED

        batch = await stub.CreateBatch(batches_pb2.CreateBatchRequest(items=[chat_item("a")]))
        await _collect(stub, batch.batch.id)
        cancel = stub.CancelBatch(batches_pb2.CancelBatchRequest(batch_id=batch.batch.id))
        code, reason, _ = await refused(cancel)
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, Reason.BATCH_STATE_CONFLICT)
        resume = stub.ResumeBatch(batches_pb2.ResumeBatchRequest(batch_id=batch.batch.id))
        assert (await refused(resume))[1] is Reason.BATCH_STATE_CONFLICT
        retry = stub.RetryDeadLetters(
            batches_pb2.RetryDeadLettersRequest(batch_id=batch.batch.id, custom_id="a")
        )
        code, reason, message = await refused(retry)
        assert reason is Reason.INVALID_REQUEST and "succeeded" in message


async def test_dead_letters_are_listed_and_redriven(mesh: Mesh, tmp_path: Path) -> None:
    config = _config(mesh, tmp_path, max_attempts=2)
    s = await serve(config, address="127.0.0.1:0", env=mesh.env())
    channel, stub = await _stub(s.port)
    try:
        async with channel:
            # every call of the "doomed" prompt fails upstream (the emulator's fault header
            # cannot be set per item, so the item names a model that always fails)
            mesh.set_fault("echo-doomed", "server_error")
            items = [chat_item("ok"), chat_item("doomed", model="emulator/echo-doomed")]
            batch = (await stub.CreateBatch(batches_pb2.CreateBatchRequest(items=items))).batch
            events, final = await _collect(stub, batch.id)
            assert final.counts.dead == 1 and final.counts.completed == 1
            dead = (
                await stub.ListDeadLetters(batches_pb2.ListDeadLettersRequest(batch_id=batch.id))
            ).dead_letters
            assert [d.item.custom_id for d in dead] == ["doomed"]
            assert [a.number for a in dead[0].trail] == [1, 2]
            assert dead[0].error.reason != 0
            await _clear_fault(mesh, "echo-doomed")
            retried = await stub.RetryDeadLetters(
                batches_pb2.RetryDeadLettersRequest(batch_id=batch.id, all=True)
            )
            assert retried.retried == 1
            again, final = await _collect(stub, batch.id, cursor=events[-1].cursor)
            assert _ids(again) == ["doomed"]
            assert final.counts.completed == 2 and final.counts.dead == 0
    finally:
        await _clear_fault(mesh, "echo-doomed")
        await s.stop(1)


async def test_a_restart_on_the_same_database_finishes_the_batch_once(
    mesh: Mesh, tmp_path: Path
) -> None:
    config = _config(mesh, tmp_path, concurrency=2, items_per_second=40.0)
    first = await serve(config, address="127.0.0.1:0", env=mesh.env())
    items = [chat_item(f"r{i}", f"restart {i}") for i in range(60)]
    channel, stub = await _stub(first.port)
    async with channel:
        batch = (await stub.CreateBatch(batches_pb2.CreateBatchRequest(items=items))).batch
        got = []
        request = batches_pb2.StreamBatchResultsRequest(batch_id=batch.id)
        async for event in stub.StreamBatchResults(request, timeout=60):
            got.append(event)
            if len(got) == 10:
                break
    await first.stop(1)  # mid-batch
    second = await serve(config, address="127.0.0.1:0", env=mesh.env())
    try:
        channel, stub = await _stub(second.port)
        async with channel:
            rest, final = await _collect(stub, batch.id, cursor=got[-1].cursor)
        ids = _ids(got) + _ids(rest)
        assert sorted(ids) == sorted(i.custom_id for i in items)  # each exactly once
        assert final.state == batches_pb2.BATCH_STATE_COMPLETED
        assert final.counts.completed == 60
    finally:
        await second.stop(1)


async def test_a_batch_over_its_tenants_budget_pauses_with_the_rest_pending(
    mesh: Mesh, tmp_path: Path
) -> None:
    from llmesh.services.common.policy_settings import PolicyConfig

    config = replace(
        _config(mesh, tmp_path, concurrency=1),
        policy=PolicyConfig.from_mapping(
            {
                "budgets": {"tenants": {"acme": {"daily_usd": 0.001}}},
                "prices": {"emulator/*": {"input": 10, "output": 10}},
            }
        ),
    )
    s = await serve(config, address="127.0.0.1:0", env=mesh.env())
    try:
        channel, stub = await _stub(s.port)
        async with channel:
            items = []
            for i in range(20):
                item = chat_item(f"b{i}", f"spend {i}")
                item.chat.max_tokens = 16
                items.append(item)
            created = await stub.CreateBatch(
                batches_pb2.CreateBatchRequest(items=items, metadata={"tenant": "acme"})
            )
            assert created.batch.tenant == "acme"
            request = batches_pb2.StreamBatchResultsRequest(batch_id=created.batch.id)
            paused = None
            async for event in stub.StreamBatchResults(request, timeout=60):
                assert event.WhichOneof("event") != "finished"
                if (
                    event.WhichOneof("event") == "progress"
                    and event.progress.state == batches_pb2.BATCH_STATE_PAUSED_BUDGET
                ):
                    paused = event.progress
                    break
            assert paused is not None
            assert paused.state == batches_pb2.BATCH_STATE_PAUSED_BUDGET
            assert "BUDGET_EXCEEDED" in paused.status_detail
            assert paused.counts.completed >= 1 and paused.counts.pending > 0
            assert paused.counts.completed + paused.counts.pending == 20
            resumed = await stub.ResumeBatch(
                batches_pb2.ResumeBatchRequest(batch_id=created.batch.id)
            )
            assert resumed.batch.state == batches_pb2.BATCH_STATE_QUEUED
    finally:
        await s.stop(1)


async def test_on_postgresql_a_restart_finishes_the_batch_once(
    mesh: Mesh, tmp_path: Path, batch_postgres: str
) -> None:
    import asyncpg

    from tests.batch.conftest import RUN_PREFIX

    schema = f"{RUN_PREFIX}_served"
    conn = await asyncpg.connect(batch_postgres)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        await conn.close()
    config = replace(
        _config(mesh, tmp_path, concurrency=2, items_per_second=40.0),
        database_url=f"{batch_postgres}?schema={schema}",
    )
    items = [chat_item(f"p{i}", f"pg {i}") for i in range(40)]
    first = await serve(config, address="127.0.0.1:0", env=mesh.env())
    try:
        channel, stub = await _stub(first.port)
        async with channel:
            batch = (await stub.CreateBatch(batches_pb2.CreateBatchRequest(items=items))).batch
            got = []
            request = batches_pb2.StreamBatchResultsRequest(batch_id=batch.id)
            async for event in stub.StreamBatchResults(request, timeout=60):
                got.append(event)
                if len(got) == 8:
                    break
    finally:
        await first.stop(1)
    second = await serve(config, address="127.0.0.1:0", env=mesh.env())
    try:
        channel, stub = await _stub(second.port)
        async with channel:
            rest, final = await _collect(stub, batch.id, cursor=got[-1].cursor)
        assert sorted(_ids(got) + _ids(rest)) == sorted(i.custom_id for i in items)
        assert final.state == batches_pb2.BATCH_STATE_COMPLETED
    finally:
        await second.stop(1)


async def test_files_list_in_pages_and_delete(server: OrchestratorServer) -> None:
    from google.protobuf import json_format

    line = json_format.MessageToJson(chat_item("a", "x"), indent=None).encode() + b"\n"

    async def upload(name: str) -> AsyncIterator[batches_pb2.UploadBatchFileRequest]:
        yield batches_pb2.UploadBatchFileRequest(filename=name, data=line)

    channel, stub = await _stub(server.port)
    async with channel:
        ids = [(await stub.UploadBatchFile(upload(f"{i}.jsonl"))).file.id for i in range(3)]
        first = await stub.ListBatchFiles(batches_pb2.ListBatchFilesRequest(page_size=2))
        assert [f.id for f in first.files] == [ids[2], ids[1]]
        assert first.next_page_token
        rest = await stub.ListBatchFiles(
            batches_pb2.ListBatchFilesRequest(page_size=2, page_token=first.next_page_token)
        )
        assert [f.id for f in rest.files] == [ids[0]] and not rest.next_page_token
        for bad in (
            batches_pb2.ListBatchFilesRequest(page_size=101),
            batches_pb2.ListBatchFilesRequest(page_token="not-a-token"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ListBatchFiles(bad)
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        gone = await stub.DeleteBatchFile(batches_pb2.DeleteBatchFileRequest(file_id=ids[1]))
        assert gone.file_id == ids[1]
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.DeleteBatchFile(batches_pb2.DeleteBatchFileRequest(file_id=ids[1]))
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
        listed = await stub.ListBatchFiles(batches_pb2.ListBatchFilesRequest())
        assert [f.id for f in listed.files] == [ids[2], ids[0]]
