"""The orchestrator's batch jobs: their store, executor and gRPC service, built at serve().

The batch tables live in the ledger database; the executor identifies this process by its
ledger writer's instance (whose lease the writer renews), so a batch whose executor died
(lease expired, or its process gone on this machine) is taken over by another process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmesh.services.batch import BatchRunner, BatchServicer, BatchStore, open_batch_store
from llmesh.services.batch.native_seam import NativeClients, NativeFactory
from llmesh.services.common.config import Config
from llmesh.services.ledger.instances import dead_here
from llmesh.services.orchestrator.assembly import Assembly
from llmesh.services.orchestrator.batch_calls import MeshItemCalls

__all__ = ["BATCH_SERVICE_NAME", "Batches", "build_batches"]

BATCH_SERVICE_NAME = "llmesh.v1.BatchService"


@dataclass
class Batches:
    """The batch store, its executor and its servicer."""

    store: BatchStore
    runner: BatchRunner
    servicer: BatchServicer

    async def aclose(self, grace: float) -> None:
        """Drain the batch RPCs, stop the executor (items in flight run again on the next
        start), close the store."""
        await self.servicer.guard.drain(grace)
        await self.runner.aclose()
        await self.store.aclose()


def build_batches(
    config: Config,
    assembly: Assembly,
    *,
    env: Mapping[str, str] | None = None,
    native: NativeFactory | None = None,
) -> Batches:
    """The batch service over `assembly`'s call path and ledger; nothing runs until
    `Batches.runner.start()`."""
    store = open_batch_store(config.database_url)
    calls = MeshItemCalls(
        assembly.path, config, prices=assembly.prices, writer=assembly.writer, env=env
    )
    writer = assembly.writer
    me = writer.instance.instance_id if writer is not None and writer.instance else "local"
    ledger = assembly.ledger_store

    async def dead() -> Sequence[str]:
        if ledger is None:
            return ()
        return dead_here(await ledger.instances(), me)

    # one client per provider, shared by the executor and the servicer, closed with the
    # executor
    clients = NativeClients(native) if native is not None else None
    runner = BatchRunner(
        store, calls, config.batch, instance_id=me, dead_instances=dead, native=clients
    )
    servicer = BatchServicer(
        store,
        runner,
        calls,
        config.batch,
        authenticator=assembly.authenticator,
        native=clients,
    )
    return Batches(store, runner, servicer)
