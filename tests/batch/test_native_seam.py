"""`NativeClients`: one batch client per provider, shared, and closed once with the
executor (the real SDK clients hold connection pools)."""

from __future__ import annotations

from dataclasses import dataclass

from llmesh.services.batch import BatchRunner, BatchStore
from llmesh.services.batch.model import BatchMode, BatchState
from llmesh.services.batch.native_seam import NativeBatches, NativeClients
from llmesh.services.common.provider_settings import ResolvedProvider
from tests.batch.conftest import FakeCalls, resolved
from tests.batch.test_executor import MemoryBatches, create, runner, state_is, wait_for


@dataclass
class Counting:
    """A factory counting the clients it makes, one `MemoryBatches` per call."""

    made: list[MemoryBatches]

    def __call__(self, provider: ResolvedProvider) -> NativeBatches | None:
        if provider.config.kind == "none":
            return None
        api = MemoryBatches(polls=1)
        self.made.append(api)
        return api


def test_each_provider_gets_one_client_made_once() -> None:
    factory = Counting([])
    clients = NativeClients(factory)
    openai = resolved("openai", "http://x/v1")
    first, again = clients(openai), clients(openai)
    assert first is again
    other = clients(resolved("anthropic", "http://x"))
    assert other is not first
    assert clients(resolved("none", "http://x")) is None
    assert clients(resolved("none", "http://x")) is None
    assert len(factory.made) == 2


async def test_aclose_closes_every_client_once_even_when_one_fails() -> None:
    @dataclass
    class Broken(MemoryBatches):
        async def aclose(self) -> None:
            raise RuntimeError("pool already gone")

    broken, fine = Broken(), MemoryBatches()
    apis = {"openai": broken, "anthropic": fine}
    clients = NativeClients(lambda p: apis[p.config.kind])
    clients(resolved("openai", "http://x/v1"))
    clients(resolved("anthropic", "http://x"))
    await clients.aclose()
    assert fine.closed == 1
    await clients.aclose()  # nothing left open: nothing closed twice
    assert fine.closed == 1


async def test_the_executor_reuses_and_then_closes_the_client(sqlite_store: BatchStore) -> None:
    factory = Counting([])
    await create(sqlite_store, ["a", "b"], mode=BatchMode.PROVIDER_NATIVE)
    made: list[BatchRunner] = []
    executor = runner(sqlite_store, FakeCalls(kind="openai"), made, native=factory)
    try:
        await executor.start()
        await wait_for(lambda: state_is(sqlite_store, BatchState.COMPLETED), "completion")
        (api,) = factory.made  # submit and every poll and the results read: one client
        assert api.closed == 0
    finally:
        await executor.aclose()
    assert api.closed == 1
