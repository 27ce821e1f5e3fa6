"""Provider-native runs: one native batch per provider and model (OpenAI takes a single
model per batch; each item is priced at its own model's rate), and a native batch the
provider no longer knows (BATCH_NOT_FOUND) ends with its items as dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmesh.services.batch import BatchRunner, BatchStore
from llmesh.services.batch.calls import FirstTarget
from llmesh.services.batch.model import BatchMode, BatchState, ItemState
from llmesh.services.batch.native_seam import NativeItem, NativeResult, NativeStatus
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.caller import Caller
from llmesh.services.core.chat import ChatRequest, Message, Role
from llmesh.v1 import batches_pb2, errors_pb2
from tests.batch.conftest import FakeCalls
from tests.batch.test_executor import MemoryBatches, create, results, runner, state_is, wait_for


@dataclass
class ModelCalls(FakeCalls):
    """Items whose text starts ``<model>:`` go to that model; the native rows priced are
    kept as (custom_id, model)."""

    priced: list[tuple[str, str]] = field(default_factory=list)

    def first_target(self, item: batches_pb2.BatchItem) -> FirstTarget:
        target = super().first_target(item)
        model = item.chat.messages[0].content.split(":")[0]
        return FirstTarget(target.provider, target.kind, target.settings, model)

    def native_item(self, item: batches_pb2.BatchItem) -> NativeItem:
        text = item.chat.messages[0].content
        request = ChatRequest(messages=(Message(Role.USER, text),))
        return NativeItem(item.custom_id, request, text.split(":")[0])

    async def record_native(
        self, caller: Caller, target: FirstTarget, result: NativeResult, batch_id: str
    ) -> float:
        self.priced.append((result.custom_id, target.model))
        return 0.5


async def test_a_native_batch_per_model(sqlite_store: BatchStore) -> None:
    api = MemoryBatches(polls=1)
    calls = ModelCalls(kind="openai")
    texts = ["gpt-4o:a", "gpt-4o-mini:b", "gpt-4o:c"]
    await create(sqlite_store, texts, mode=BatchMode.PROVIDER_NATIVE)
    made: list[BatchRunner] = []
    try:
        await runner(sqlite_store, calls, made, native=lambda _: api).start()
        await wait_for(lambda: state_is(sqlite_store, BatchState.COMPLETED), "completion")
    finally:
        for r in made:
            await r.aclose()
    models = sorted(sorted({i.provider_model for i in items}) for items in api.batches.values())
    assert models == [["gpt-4o"], ["gpt-4o-mini"]]
    assert sorted(calls.priced) == [("c0", "gpt-4o"), ("c1", "gpt-4o-mini"), ("c2", "gpt-4o")]


@dataclass
class Forgetting(MemoryBatches):
    """A provider that loses every batch once submitted."""

    async def status(self, provider_batch_id: str) -> NativeStatus:
        raise LlmeshError(Reason.BATCH_NOT_FOUND, f"no batch {provider_batch_id}")


async def test_a_lost_native_batch_leaves_dead_letters(sqlite_store: BatchStore) -> None:
    api = Forgetting()
    await create(sqlite_store, ["a", "b"], mode=BatchMode.PROVIDER_NATIVE)
    made: list[BatchRunner] = []
    try:
        await runner(sqlite_store, FakeCalls(kind="openai"), made, native=lambda _: api).start()
        await wait_for(lambda: state_is(sqlite_store, BatchState.FAILED), "the failure")
    finally:
        for r in made:
            await r.aclose()
    counts = await sqlite_store.counts("b1")
    assert counts[ItemState.DEAD] == 2
    got = await results(sqlite_store)
    assert sorted(r.custom_id for r in got) == ["c0", "c1"]
    assert {r.error.reason for r in got} == {errors_pb2.ERROR_REASON_BATCH_NOT_FOUND}
    assert (await sqlite_store.natives("b1"))[0].state == "failed"
