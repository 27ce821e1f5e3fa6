"""The batch executor over a real SQLite store and a scripted call path: concurrency, the
batch's tenant as caller, dead letters and their retry, budget pauses, cancel, resuming
after the executor stops, and provider-native batches through an in-memory batch API."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from llmesh.services.batch.executor import BatchRunner
from llmesh.services.batch.model import BatchMode, BatchRow, BatchState, ItemState
from llmesh.services.batch.native_seam import (
    NativeBatches,
    NativeItem,
    NativeResult,
    NativeState,
    NativeStatus,
)
from llmesh.services.batch.store import BatchStore
from llmesh.services.common.batch_settings import BatchConfig
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.provider_settings import ResolvedProvider
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.usage import Usage
from llmesh.v1 import batches_pb2, chat_pb2, errors_pb2, orchestrator_pb2
from tests.batch.conftest import FakeCalls, chat_item

FAST = BatchConfig(concurrency=3, retry_backoff=0.0, poll_interval=0.05, native_poll_interval=0.01)


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, limit: float = 30.0) -> None:
    """Poll `check` until it holds (bounded; fails naming `what`)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not await check():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def create(
    store: BatchStore,
    texts: Sequence[str],
    batch_id: str = "b1",
    mode: BatchMode = BatchMode.MESH,
) -> None:
    row = BatchRow(
        batch_id=batch_id,
        tenant="acme",
        key_id="key-1",
        state=BatchState.QUEUED,
        mode=mode,
        metadata={},
        input_file_id="",
        created_at=1.0,
        total=len(texts),
    )
    items = [(f"c{i}", chat_item(f"c{i}", t).SerializeToString()) for i, t in enumerate(texts)]
    await store.create(row, items)


async def state_is(store: BatchStore, state: BatchState, batch_id: str = "b1") -> bool:
    row = await store.get(batch_id)
    return row is not None and row.state is state


async def results(store: BatchStore, batch_id: str = "b1") -> list[batches_pb2.BatchItemResult]:
    rows = await store.results_after(batch_id, 0, 100_000)
    return [batches_pb2.BatchItemResult.FromString(data) for _, data in rows]


@pytest.fixture
async def runners(sqlite_store: BatchStore) -> AsyncIterator[list[BatchRunner]]:
    made: list[BatchRunner] = []
    yield made
    for r in made:
        await r.aclose()


def runner(
    store: BatchStore,
    calls: FakeCalls,
    made: list[BatchRunner],
    settings: BatchConfig = FAST,
    me: str = "me",
    native: Callable[[ResolvedProvider], NativeBatches | None] | None = None,
) -> BatchRunner:
    r = BatchRunner(store, calls, settings, instance_id=me, native=native)
    made.append(r)
    return r


async def test_items_run_at_the_configured_concurrency_as_the_batch_tenant(
    sqlite_store: BatchStore, runners: list[BatchRunner]
) -> None:
    calls = FakeCalls(gate=asyncio.Event())
    await create(sqlite_store, [f"t{i}" for i in range(10)])
    await runner(sqlite_store, calls, runners).start()

    async def three_in_flight() -> bool:
        return calls.in_flight == 3

    await wait_for(three_in_flight, "three items in flight")
    calls.gate.set()  # type: ignore[union-attr]
    await wait_for(lambda: state_is(sqlite_store, BatchState.COMPLETED), "completion")
    assert calls.peak == 3
    got = await results(sqlite_store)
    assert sorted(r.custom_id for r in got) == sorted(f"c{i}" for i in range(10))
    assert all(r.state == batches_pb2.BATCH_ITEM_STATE_SUCCEEDED for r in got)
    assert got[0].chat.message.content.startswith("t")
    assert {(c.tenant, c.key_id) for _, c in calls.calls} == {("acme", "key-1")}
    row = await sqlite_store.get("b1")
    assert row is not None and row.finished_at is not None and row.owner == ""


async def test_retryable_failures_become_dead_letters_and_are_redriven(
    sqlite_store: BatchStore, runners: list[BatchRunner]
) -> None:
    calls = FakeCalls(script={"flaky": [Reason.OVERLOADED], "down": [Reason.OVERLOADED] * 3})
    await create(sqlite_store, ["ok", "flaky", "down", "bad"])
    calls.script["bad"] = [Reason.INVALID_REQUEST]
    r = runner(sqlite_store, calls, runners)
    await r.start()
    await wait_for(lambda: state_is(sqlite_store, BatchState.COMPLETED), "completion")
    by_id = {x.custom_id: x for x in await results(sqlite_store)}
    assert by_id["c1"].state == batches_pb2.BATCH_ITEM_STATE_SUCCEEDED
    assert by_id["c1"].attempts == 2
    assert by_id["c2"].state == batches_pb2.BATCH_ITEM_STATE_DEAD
    assert by_id["c2"].error.reason == errors_pb2.ERROR_REASON_OVERLOADED
    assert by_id["c3"].state == batches_pb2.BATCH_ITEM_STATE_FAILED  # retrying cannot help
    assert by_id["c3"].attempts == 1
    dead = await sqlite_store.dead_letters("b1", "", 10)
    assert [d.custom_id for d in dead] == ["c2"]
    assert [e["number"] for e in dead[0].trail] == [1, 2, 3]
    assert {e["reason"] for e in dead[0].trail} == {"OVERLOADED"}

    # re-driven (the script is used up: it succeeds now), the batch completes again
    assert await sqlite_store.retry_dead("b1", None) == 1
    await sqlite_store.set_state("b1", BatchState.QUEUED, reopen=True)
    r.wake()
    await wait_for(lambda: state_is(sqlite_store, BatchState.COMPLETED), "completion again")
    final = {x.custom_id: x for x in await results(sqlite_store)}
    assert len(final) == 4 and final["c2"].state == batches_pb2.BATCH_ITEM_STATE_SUCCEEDED
    assert await sqlite_store.dead_letters("b1", "", 10) == []


async def test_budget_exceeded_pauses_the_batch_with_the_rest_pending(
    sqlite_store: BatchStore, runners: list[BatchRunner]
) -> None:
    calls = FakeCalls(script={"t3": [Reason.BUDGET_EXCEEDED]})
    await create(sqlite_store, [f"t{i}" for i in range(8)])
    r = runner(sqlite_store, calls, runners, BatchConfig(concurrency=1, retry_backoff=0.0))
    await r.start()
    await wait_for(lambda: state_is(sqlite_store, BatchState.PAUSED_BUDGET), "the pause")
    counts = await sqlite_store.counts("b1")
    assert counts[ItemState.SUCCEEDED] == 3
    assert counts[ItemState.PENDING] == 5  # the item that hit the budget waits too
    row = await sqlite_store.get("b1")
    assert row is not None and "BUDGET_EXCEEDED" in row.status_detail
    await asyncio.sleep(0.2)  # a paused batch is not taken up again by itself
    assert (await sqlite_store.counts("b1"))[ItemState.PENDING] == 5
    # resumed (the budget allows again): the rest runs
    await sqlite_store.set_state("b1", BatchState.QUEUED, detail="")
    r.wake()
    await wait_for(lambda: state_is(sqlite_store, BatchState.COMPLETED), "completion")
    assert len(await results(sqlite_store)) == 8


async def test_cancel_lets_items_in_flight_finish_and_cancels_the_rest(
    sqlite_store: BatchStore, runners: list[BatchRunner]
) -> None:
    calls = FakeCalls(gate=asyncio.Event())
    await create(sqlite_store, [f"t{i}" for i in range(10)])
    await runner(sqlite_store, calls, runners).start()

    async def busy() -> bool:
        return calls.in_flight == 3

    await wait_for(busy, "items in flight")
    await sqlite_store.set_state("b1", BatchState.CANCELLING)
    calls.gate.set()  # type: ignore[union-attr]
    await wait_for(lambda: state_is(sqlite_store, BatchState.CANCELLED), "the cancel")
    counts = await sqlite_store.counts("b1")
    assert counts[ItemState.SUCCEEDED] >= 3
    assert counts[ItemState.SUCCEEDED] + counts[ItemState.CANCELLED] == 10
    assert counts.unfinished == 0
    # every item has its result: the cancelled ones a CANCELLED one, never run
    got = await results(sqlite_store)
    assert sorted(r.custom_id for r in got) == sorted(f"c{i}" for i in range(10))
    cancelled = [r for r in got if r.state == batches_pb2.BATCH_ITEM_STATE_CANCELLED]
    assert len(cancelled) == counts[ItemState.CANCELLED]
    assert all(r.WhichOneof("outcome") is None for r in cancelled)


async def test_a_new_executor_resumes_without_redoing_finished_items(
    sqlite_store: BatchStore, runners: list[BatchRunner]
) -> None:
    first_calls = FakeCalls()
    await create(sqlite_store, [f"t{i}" for i in range(30)])
    slow = BatchConfig(concurrency=2, items_per_second=40.0, poll_interval=0.05)
    first = runner(sqlite_store, first_calls, runners, slow, me="first")
    await first.start()

    async def some_done() -> bool:
        return (await sqlite_store.counts("b1"))[ItemState.SUCCEEDED] >= 5

    await wait_for(some_done, "a few results")
    await first.aclose()  # mid-batch: what it had in flight runs again elsewhere
    done_before = {r.custom_id for r in await results(sqlite_store)}
    assert 5 <= len(done_before) < 30

    second_calls = FakeCalls()
    await runner(sqlite_store, second_calls, runners, FAST, me="second").start()
    await wait_for(lambda: state_is(sqlite_store, BatchState.COMPLETED), "completion")
    final = await results(sqlite_store)
    assert sorted(r.custom_id for r in final) == sorted(f"c{i}" for i in range(30))
    assert not done_before & {cid for cid, _ in second_calls.calls}  # never redone


@dataclass
class MemoryBatches:
    """A provider batch API in memory: a submitted batch stays in progress for `polls`
    status calls, then completes; items whose text is "refuse" get an error."""

    polls: int = 2
    batches: dict[str, list[NativeItem]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    closed: int = 0
    """How many times `aclose` was called."""

    keys: dict[str, str] = field(default_factory=dict)
    """The batch id of each submission key."""

    async def submit(self, items: Sequence[NativeItem], key: str) -> str:
        batch_id = f"nb-{next(self.ids)}"
        self.batches[batch_id] = list(items)
        self.keys[key] = batch_id
        return batch_id

    async def find(self, key: str, count: int) -> str | None:
        found = self.keys.get(key)
        assert found is None or len(self.batches[found]) == count
        return found

    async def status(self, provider_batch_id: str) -> NativeStatus:
        items = self.batches[provider_batch_id]
        self.seen[provider_batch_id] = self.seen.get(provider_batch_id, 0) + 1
        if provider_batch_id in self.cancelled:
            return NativeStatus(NativeState.CANCELLED, len(items), 0, 0)
        if self.seen[provider_batch_id] <= self.polls:
            return NativeStatus(NativeState.IN_PROGRESS, len(items), 0, 0)
        return NativeStatus(NativeState.COMPLETED, len(items), len(items), 0)

    async def results(self, provider_batch_id: str) -> AsyncIterator[NativeResult]:
        if provider_batch_id in self.cancelled:
            return
        for item in self.batches[provider_batch_id]:
            assert isinstance(item.request, ChatRequest)
            text = item.request.messages[0].content
            if text == "refuse":
                error = LlmeshError(Reason.UPSTREAM_INVALID_REQUEST, "refused")
                yield NativeResult(item.custom_id, None, None, None, error)
                continue
            reply = orchestrator_pb2.ChatResponse(
                message=chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, content=text)
            )
            yield NativeResult(item.custom_id, reply, None, Usage(10, 5), None)

    async def cancel(self, provider_batch_id: str) -> None:
        self.cancelled.add(provider_batch_id)

    async def aclose(self) -> None:
        self.closed += 1


async def test_native_batches_are_submitted_once_polled_and_collected(
    sqlite_store: BatchStore, runners: list[BatchRunner]
) -> None:
    api = MemoryBatches(polls=3)
    calls = FakeCalls(kind="openai")
    await create(sqlite_store, ["a", "refuse", "c"], mode=BatchMode.PROVIDER_NATIVE)
    first = runner(sqlite_store, calls, runners, me="first", native=lambda _: api)
    await first.start()

    async def submitted() -> bool:
        return bool(await sqlite_store.natives("b1"))

    await wait_for(submitted, "the submission")
    await first.aclose()  # a restart must poll the same native batch, not submit again
    await runner(sqlite_store, calls, runners, me="second", native=lambda _: api).start()
    await wait_for(lambda: state_is(sqlite_store, BatchState.COMPLETED), "completion")
    assert len(api.batches) == 1
    by_id = {r.custom_id: r for r in await results(sqlite_store)}
    assert by_id["c0"].chat.message.content == "a"
    assert by_id["c0"].cost_usd == 0.5  # what record_native priced it at
    assert by_id["c1"].state == batches_pb2.BATCH_ITEM_STATE_FAILED
    assert calls.calls == []  # nothing went through the mesh's call path


async def test_rate_limit_waits_do_not_spend_attempts(
    sqlite_store: BatchStore, runners: list[BatchRunner]
) -> None:
    waits = [Reason.RATE_LIMIT_EXCEEDED] * 4 + [Reason.QUEUE_FULL]
    calls = FakeCalls(script={"busy": list(waits)})
    await create(sqlite_store, ["busy"])
    settings = BatchConfig(max_attempts=1, retry_backoff=0.0, poll_interval=0.05)
    await runner(sqlite_store, calls, runners, settings).start()
    await wait_for(lambda: state_is(sqlite_store, BatchState.COMPLETED), "completion")
    (only,) = await results(sqlite_store)
    assert only.state == batches_pb2.BATCH_ITEM_STATE_SUCCEEDED
    assert only.attempts == 1 and len(calls.calls) == 6


async def test_cancelling_a_native_batch_cancels_it_at_the_provider(
    sqlite_store: BatchStore, runners: list[BatchRunner]
) -> None:
    api = MemoryBatches(polls=10_000)  # never finishes by itself
    calls = FakeCalls(kind="anthropic")
    await create(sqlite_store, ["a", "b"], mode=BatchMode.PROVIDER_NATIVE)
    await runner(sqlite_store, calls, runners, native=lambda _: api).start()

    async def submitted() -> bool:
        return bool(await sqlite_store.natives("b1"))

    await wait_for(submitted, "the submission")
    await sqlite_store.set_state("b1", BatchState.CANCELLING)
    await wait_for(lambda: state_is(sqlite_store, BatchState.CANCELLED), "the cancel")
    assert api.cancelled == set(api.batches)
    counts = await sqlite_store.counts("b1")
    assert counts[ItemState.CANCELLED] == 2


async def test_a_native_batch_that_expires_leaves_dead_letters_to_resubmit(
    sqlite_store: BatchStore, runners: list[BatchRunner]
) -> None:
    @dataclass
    class Expiring(MemoryBatches):
        expire: bool = True

        async def status(self, provider_batch_id: str) -> NativeStatus:
            if self.expire:
                return NativeStatus(NativeState.EXPIRED, 2, 0, 0)
            return await super().status(provider_batch_id)

        async def results(self, provider_batch_id: str) -> AsyncIterator[NativeResult]:
            items = self.batches[provider_batch_id]
            for item in items[:1] if self.expire else items:  # expired: one result made it
                reply = orchestrator_pb2.ChatResponse()
                yield NativeResult(item.custom_id, reply, None, Usage(1, 1), None)

    api = Expiring(polls=0)
    await create(sqlite_store, ["a", "b"], mode=BatchMode.PROVIDER_NATIVE)
    r = runner(sqlite_store, FakeCalls(kind="openai"), runners, native=lambda _: api)
    await r.start()
    await wait_for(lambda: state_is(sqlite_store, BatchState.EXPIRED), "the expiry")
    dead = await sqlite_store.dead_letters("b1", "", 10)
    assert [d.custom_id for d in dead] == ["c1"]
    assert (await sqlite_store.counts("b1"))[ItemState.SUCCEEDED] == 1

    api.expire = False  # retried, the dead item goes to the provider again
    assert await sqlite_store.retry_dead("b1", None) == 1
    await sqlite_store.set_state("b1", BatchState.QUEUED, reopen=True)
    r.wake()
    await wait_for(lambda: state_is(sqlite_store, BatchState.COMPLETED), "completion")
    assert len(api.batches) == 2
    assert [i.custom_id for i in api.batches["nb-1"]] == ["c1"]
    assert (await sqlite_store.counts("b1"))[ItemState.SUCCEEDED] == 2


async def test_cancel_reaches_items_waiting_between_attempts(
    sqlite_store: BatchStore, runners: list[BatchRunner]
) -> None:
    calls = FakeCalls(script={"limited": [Reason.RATE_LIMIT_EXCEEDED] * 100_000})
    await create(sqlite_store, ["limited", "limited", "ok"])
    await runner(sqlite_store, calls, runners).start()

    async def waiting() -> bool:
        return len(calls.calls) > 10  # the limited items keep waiting their turn

    await wait_for(waiting, "items waiting on the rate limit")
    await sqlite_store.set_state("b1", BatchState.CANCELLING)
    await wait_for(lambda: state_is(sqlite_store, BatchState.CANCELLED), "the cancel")
    counts = await sqlite_store.counts("b1")
    assert (counts[ItemState.SUCCEEDED], counts[ItemState.CANCELLED]) == (1, 2)


async def test_a_native_batch_the_provider_refuses_fails_its_items(
    sqlite_store: BatchStore, runners: list[BatchRunner]
) -> None:
    @dataclass
    class Refusing(MemoryBatches):
        async def submit(self, items: Sequence[NativeItem], key: str) -> str:
            raise LlmeshError(Reason.UPSTREAM_INVALID_REQUEST, "batch rejected: bad line 2")

    await create(sqlite_store, ["a", "b"], mode=BatchMode.PROVIDER_NATIVE)
    api = Refusing()
    await runner(sqlite_store, FakeCalls(kind="openai"), runners, native=lambda _: api).start()
    await wait_for(lambda: state_is(sqlite_store, BatchState.FAILED), "the failure")
    got = await results(sqlite_store)
    assert sorted(r.custom_id for r in got) == ["c0", "c1"]
    assert {r.state for r in got} == {batches_pb2.BATCH_ITEM_STATE_FAILED}
    assert got[0].error.reason == errors_pb2.ERROR_REASON_UPSTREAM_INVALID_REQUEST
    assert "bad line 2" in got[0].error.message


async def test_an_idle_runner_polls_in_its_own_task_without_starting_one_per_poll(
    sqlite_store: BatchStore, runners: list[BatchRunner]
) -> None:
    """A task a poll (``asyncio.wait_for`` over the wake event) churned the loop and showed
    up, each time another, to anything that watches a server's tasks for leaks."""
    before = asyncio.all_tasks()
    await runner(sqlite_store, FakeCalls(), runners).start()
    seen: set[asyncio.Task[object]] = set()
    for _ in range(12):  # several polls (every 0.05 s)
        await asyncio.sleep(0.02)
        seen |= asyncio.all_tasks() - before
    assert "llmesh-batch-scan" in {t.get_name() for t in seen}
    waits = [t for t in seen if getattr(t.get_coro(), "__qualname__", "") == "Event.wait"]
    assert not waits, waits
