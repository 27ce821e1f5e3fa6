"""Provider-native runs: one native batch per provider and model (OpenAI takes a single
model per batch; each item is priced at its own model's rate), and a native batch the
provider no longer knows (BATCH_NOT_FOUND) ends with its items as dead letters."""

from __future__ import annotations

from collections.abc import Sequence
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


@dataclass
class CrashAfterSubmit(MemoryBatches):
    """A provider whose first submission arrives, but whose answer is lost: the process
    dies (here: an unexpected error) before the batch id can be stored."""

    crashes: int = 1
    before_arrival: bool = False
    """Crash before the provider has the batch (it never arrives) instead."""

    async def submit(self, items: Sequence[NativeItem], key: str) -> str:
        if self.crashes and self.before_arrival:
            self.crashes -= 1
            raise RuntimeError("the connection died before the request was sent")
        batch_id = await super().submit(items, key)
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("the process died after the provider accepted the batch")
        return batch_id


async def _run_to_completion(store: BatchStore, api: MemoryBatches) -> None:
    made: list[BatchRunner] = []
    try:
        await runner(store, FakeCalls(kind="openai"), made, native=lambda _: api).start()
        await wait_for(lambda: state_is(store, BatchState.COMPLETED), "completion")
    finally:
        for r in made:
            await r.aclose()


async def test_a_submission_cut_off_after_arrival_is_found_not_resubmitted(
    sqlite_store: BatchStore,
) -> None:
    api = CrashAfterSubmit(polls=1)
    await create(sqlite_store, ["a", "b", "c"], mode=BatchMode.PROVIDER_NATIVE)
    await _run_to_completion(sqlite_store, api)
    assert len(api.batches) == 1  # found again by its key, never submitted twice
    (key,) = api.keys
    assert key.startswith("llmesh-submit-")
    got = await results(sqlite_store)
    assert sorted(r.custom_id for r in got) == ["c0", "c1", "c2"]
    assert {r.state for r in got} == {batches_pb2.BATCH_ITEM_STATE_SUCCEEDED}
    natives = await sqlite_store.natives("b1")
    assert [(n.provider_batch_id, n.state) for n in natives] == [("nb-0", "completed")]


async def test_a_submission_that_never_arrived_is_submitted_again(
    sqlite_store: BatchStore,
) -> None:
    api = CrashAfterSubmit(polls=1, before_arrival=True)
    await create(sqlite_store, ["a", "b"], mode=BatchMode.PROVIDER_NATIVE)
    await _run_to_completion(sqlite_store, api)
    assert len(api.batches) == 1
    assert [n.state for n in await sqlite_store.natives("b1")] == ["completed"]
    assert len(await results(sqlite_store)) == 2


async def test_a_cut_off_submission_whose_provider_lost_its_batch_api_fails_its_items(
    sqlite_store: BatchStore,
) -> None:
    await create(sqlite_store, ["a", "b"], mode=BatchMode.PROVIDER_NATIVE)
    await sqlite_store.reserve_native("b1", "openai", "llmesh-submit-1-x", ["c0", "c1"])
    made: list[BatchRunner] = []
    try:  # restarted without a batch API for the provider
        await runner(sqlite_store, FakeCalls(kind="openai"), made, native=lambda _: None).start()
        await wait_for(lambda: state_is(sqlite_store, BatchState.FAILED), "the failure")
    finally:
        for r in made:
            await r.aclose()
    got = await results(sqlite_store)
    assert sorted(r.custom_id for r in got) == ["c0", "c1"]
    assert {r.error.reason for r in got} == {errors_pb2.ERROR_REASON_PROVIDER_NOT_CONFIGURED}
    assert await sqlite_store.natives("b1") == []
