"""More of BatchService end to end: provider-native batches through an injected batch API
(priced at batch rates in the ledger), cancel of a running batch, paging, and tenants kept
apart by API keys."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from llmesh.services.auth import open_key_store
from llmesh.services.common.errors import Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core.usage import Usage
from llmesh.services.ledger import PriceTable
from llmesh.services.orchestrator.server import serve
from llmesh.v1 import batches_pb2
from tests.batch.conftest import chat_item
from tests.batch.test_executor import MemoryBatches, wait_for
from tests.batch.test_servicer import _collect, _config, _ids, _stub
from tests.support.mesh import Mesh


async def test_native_mode_submits_to_the_providers_batch_api_at_batch_prices(
    mesh: Mesh, tmp_path: Path
) -> None:
    api = MemoryBatches(polls=1)
    config = _config(mesh, tmp_path, native_poll_interval=0.05)
    s = await serve(config, address="127.0.0.1:0", env=mesh.env(), native=lambda _: api)
    try:
        channel, stub = await _stub(s.port)
        async with channel:
            items = [
                chat_item(f"n{i}", f"native {i}", model="openai/gpt-4o-mini") for i in range(4)
            ]
            batch = (await stub.CreateBatch(batches_pb2.CreateBatchRequest(items=items))).batch
            assert batch.mode == batches_pb2.BATCH_MODE_PROVIDER_NATIVE  # AUTO chose it
            events, final = await _collect(stub, batch.id)
            assert sorted(_ids(events)) == [f"n{i}" for i in range(4)]
            assert final.state == batches_pb2.BATCH_STATE_COMPLETED
            mixed = [chat_item("m0", model="openai/gpt-4o-mini"), chat_item("m1")]
            other = (await stub.CreateBatch(batches_pb2.CreateBatchRequest(items=mixed))).batch
            assert other.mode == batches_pb2.BATCH_MODE_MESH  # not every item can go native
        assert len(api.batches) == 1
        (submitted,) = api.batches.values()
        assert [i.provider_model for i in submitted] == ["gpt-4o-mini"] * 4
        ledger = tmp_path / "ledger.db"

        async def four_rows() -> bool:
            conn = sqlite3.connect(ledger)
            try:
                n = conn.execute(
                    "SELECT COUNT(*) FROM usage_records WHERE provider = 'openai'"
                ).fetchone()[0]
            finally:
                conn.close()
            return bool(n == 4)

        await wait_for(four_rows, "four ledger rows")
        conn = sqlite3.connect(ledger)
        costs = [
            r[0]
            for r in conn.execute("SELECT cost_usd FROM usage_records WHERE provider = 'openai'")
        ]
        conn.close()
        full = PriceTable.defaults().cost("openai", "gpt-4o-mini", Usage(10, 5))
        assert costs == [pytest.approx(full / 2)] * 4  # half the list price
    finally:
        await s.stop(1)


async def test_cancel_of_a_running_batch(mesh: Mesh, tmp_path: Path) -> None:
    config = _config(mesh, tmp_path, concurrency=1, items_per_second=10.0)
    s = await serve(config, address="127.0.0.1:0", env=mesh.env())
    try:
        channel, stub = await _stub(s.port)
        async with channel:
            items = [chat_item(f"x{i}") for i in range(50)]
            batch = (await stub.CreateBatch(batches_pb2.CreateBatchRequest(items=items))).batch
            request = batches_pb2.StreamBatchResultsRequest(batch_id=batch.id)
            async for event in stub.StreamBatchResults(request, timeout=60):
                if event.WhichOneof("event") == "result":
                    break
            cancelled = await stub.CancelBatch(batches_pb2.CancelBatchRequest(batch_id=batch.id))
            assert cancelled.batch.state in (
                batches_pb2.BATCH_STATE_CANCELLING,
                batches_pb2.BATCH_STATE_CANCELLED,
            )
            events, final = await _collect(stub, batch.id)
            assert final.state == batches_pb2.BATCH_STATE_CANCELLED
            assert final.counts.cancelled > 0 and final.counts.pending == 0
            assert final.counts.completed + final.counts.cancelled == 50
            # every item has its result in the stream, the cancelled ones as CANCELLED
            assert sorted(_ids(events)) == sorted(f"x{i}" for i in range(50))
            states = [e.result.state for e in events if e.WhichOneof("event") == "result"]
            cancelled_results = states.count(batches_pb2.BATCH_ITEM_STATE_CANCELLED)
            assert cancelled_results == final.counts.cancelled
    finally:
        await s.stop(1)


async def test_pages_of_batches(mesh: Mesh, tmp_path: Path) -> None:
    s = await serve(_config(mesh, tmp_path), address="127.0.0.1:0", env=mesh.env())
    try:
        channel, stub = await _stub(s.port)
        async with channel:
            ids = []
            for n in range(3):
                made = await stub.CreateBatch(
                    batches_pb2.CreateBatchRequest(items=[chat_item(f"only{n}")])
                )
                ids.append(made.batch.id)
            first = await stub.ListBatches(batches_pb2.ListBatchesRequest(page_size=2))
            second = await stub.ListBatches(
                batches_pb2.ListBatchesRequest(page_size=2, page_token=first.next_page_token)
            )
            assert [b.id for b in first.batches] + [b.id for b in second.batches] == ids[::-1]
            assert second.next_page_token == ""
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.ListBatches(batches_pb2.ListBatchesRequest(page_size=1000))
            assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.ListBatches(batches_pb2.ListBatchesRequest(page_token="%%%"))
            assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await s.stop(1)


@pytest.fixture
async def keyed(mesh: Mesh, tmp_path: Path) -> AsyncIterator[tuple[int, str, str]]:
    database_url = f"sqlite:///{tmp_path}/ledger.db"
    store = await open_key_store(database_url)
    try:
        _, acme = await store.create("acme", "a")
        _, zeta = await store.create("zeta", "z")
    finally:
        await store.aclose()
    config = replace(_config(mesh, tmp_path), database_url=database_url)
    s = await serve(config, address="127.0.0.1:0", env=mesh.env())
    try:
        yield s.port, acme, zeta
    finally:
        await s.stop(1)


async def test_a_tenant_sees_only_its_own_batches(keyed: tuple[int, str, str]) -> None:
    port, acme, zeta = keyed
    as_acme = (("authorization", f"Bearer {acme}"),)
    as_zeta = (("authorization", f"Bearer {zeta}"),)
    channel, stub = await _stub(port)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await stub.ListBatches(batches_pb2.ListBatchesRequest())
        assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED
        request = batches_pb2.CreateBatchRequest(
            items=[chat_item("a")], metadata={"tenant": "zeta"}
        )
        batch = (await stub.CreateBatch(request, metadata=as_acme)).batch
        assert batch.tenant == "acme"  # a key's tenant, whatever the metadata says
        seen = await stub.GetBatch(batches_pb2.GetBatchRequest(batch_id=batch.id), metadata=as_acme)
        assert seen.batch.id == batch.id
        for call in (
            stub.GetBatch(batches_pb2.GetBatchRequest(batch_id=batch.id), metadata=as_zeta),
            stub.CancelBatch(batches_pb2.CancelBatchRequest(batch_id=batch.id), metadata=as_zeta),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as hidden:
                await call
            assert from_rpc_error(hidden.value).reason is Reason.BATCH_NOT_FOUND
        listed = await stub.ListBatches(batches_pb2.ListBatchesRequest(), metadata=as_zeta)
        assert list(listed.batches) == []


async def test_two_orchestrators_on_one_database_run_each_item_once(
    mesh: Mesh, tmp_path: Path
) -> None:
    config = _config(mesh, tmp_path, concurrency=4, poll_interval=0.05)
    one = await serve(config, address="127.0.0.1:0", env=mesh.env())
    two = await serve(config, address="127.0.0.1:0", env=mesh.env())
    try:
        items = [chat_item(f"w{i}", f"worker {i}") for i in range(40)]
        channel, stub = await _stub(one.port)
        async with channel:
            batch = (await stub.CreateBatch(batches_pb2.CreateBatchRequest(items=items))).batch
        channel, stub = await _stub(two.port)  # followed through the other process
        async with channel:
            events, final = await _collect(stub, batch.id)
        assert sorted(_ids(events)) == sorted(i.custom_id for i in items)
        assert final.counts.completed == 40
    finally:
        await one.stop(1)
        await two.stop(1)
    conn = sqlite3.connect(tmp_path / "ledger.db")
    try:
        calls = conn.execute("SELECT COUNT(*) FROM usage_records").fetchone()[0]
    finally:
        conn.close()
    assert calls == 40  # one call per item: the batch ran in one process only


async def test_chat_structured_and_embedding_items_in_one_batch(mesh: Mesh, tmp_path: Path) -> None:
    from llmesh.v1 import chat_pb2, embeddings_pb2

    s = await serve(_config(mesh, tmp_path), address="127.0.0.1:0", env=mesh.env())
    try:
        structured = chat_item("json", "give me an object", model="openai/gpt-4o-mini")
        structured.chat.response_format.type = chat_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT
        embed = batches_pb2.BatchItem(
            custom_id="vec",
            embed=embeddings_pb2.EmbedRequest(
                model="openai/text-embedding-3-small", inputs=["one", "two"]
            ),
        )
        items = [chat_item("chat"), structured, embed]
        channel, stub = await _stub(s.port)
        async with channel:
            batch = (await stub.CreateBatch(batches_pb2.CreateBatchRequest(items=items))).batch
            events, final = await _collect(stub, batch.id)
        assert final.counts.completed == 3
        by_id = {e.result.custom_id: e.result for e in events if e.HasField("result")}
        assert by_id["chat"].WhichOneof("outcome") == "chat"
        assert by_id["json"].chat.message.content.lstrip().startswith("{")
        assert by_id["vec"].WhichOneof("outcome") == "embed"
        assert [e.index for e in by_id["vec"].embed.embeddings] == [0, 1]
        assert by_id["vec"].embed.model == "text-embedding-3-small"
    finally:
        await s.stop(1)
