"""Running a batch through providers' own batch APIs (provider-native mode).

The batch's items are grouped by the provider and model of their first target (OpenAI
takes one model per batch; each item is priced at its model's rate) and each group is
submitted once as a native batch. Before the submission, a key for it is stored holding
its items (state ``submitting``), and the provider's batch carries the key (OpenAI: in its
metadata; Anthropic: its time and size tell it); once the provider answers, its id replaces
the key. A submission cut off in between (a crash, a lost answer) is looked up at the
provider by its key when the batch runs again: found, it is polled; not found, its items
are submitted anew. So a batch is never submitted twice. Each native batch is polled
with a growing wait (`native_poll_interval`, times 1.5 each poll, up to `native_poll_max`);
once it ends, its results are read and written item by item, each with its ledger row
priced at the provider's batch rate. Items a failed or expired native batch left without a
result become dead letters (RetryDeadLetters submits them again), as do the items of a
native batch the provider no longer knows (BATCH_NOT_FOUND).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from llmesh.services.batch.calls import FirstTarget, ItemCalls, ItemReply
from llmesh.services.batch.model import BatchRow, BatchState, ItemState, PendingItem
from llmesh.services.batch.native_seam import (
    NativeBatches,
    NativeFactory,
    NativeResult,
    NativeState,
    NativeStatus,
)
from llmesh.services.common.batch_settings import BatchConfig
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.caller import Caller
from llmesh.v1 import batches_pb2

if TYPE_CHECKING:
    from llmesh.services.batch.store import BatchStore

__all__ = ["NativeRun"]

log = logging.getLogger("llmesh.batch")

_ENDED = {
    NativeState.COMPLETED: "completed",
    NativeState.FAILED: "failed",
    NativeState.CANCELLED: "cancelled",
    NativeState.EXPIRED: "expired",
}


class NativeRun:
    """Submits, polls and collects the native batches of provider-native batches."""

    def __init__(
        self,
        store: BatchStore,
        calls: ItemCalls,
        settings: BatchConfig,
        factory: NativeFactory | None,
        notify: Callable[[str], None],
    ) -> None:
        self._store = store
        self._calls = calls
        self._settings = settings
        self._factory = factory
        self._notify = notify

    def _api(self, target: FirstTarget) -> NativeBatches:
        api = self._factory(target.settings) if self._factory is not None else None
        if api is None:
            raise LlmeshError(
                Reason.PROVIDER_NOT_CONFIGURED,
                f"provider {target.provider} ({target.kind}) has no batch API here",
            )
        return api

    async def run(self, row: BatchRow) -> None:
        """Drive one provider-native batch to its end (or to the process's end)."""
        from llmesh.services.batch.executor import item_result

        batch_id = row.batch_id
        await self._store.set_state(
            batch_id,
            BatchState.IN_PROGRESS,
            expect=frozenset({BatchState.QUEUED, BatchState.IN_PROGRESS}),
            started=True,
        )
        self._notify(batch_id)
        caller = Caller(tenant=row.tenant, key_id=row.key_id)
        targets: dict[str, FirstTarget] = {}
        wait = self._settings.native_poll_interval
        cancel_sent: set[str] = set()
        while True:
            current = await self._store.get(batch_id)
            if current is None:
                return
            # a submission cut off (a crash, an error) before its batch id was stored
            await self._recover(batch_id, targets)
            if current.state is BatchState.IN_PROGRESS:  # new items, or retried dead ones
                fresh = await self._store.unsubmitted(batch_id)
                if fresh:
                    await self._submit(batch_id, fresh, targets)
                    wait = self._settings.native_poll_interval
            open_ = [n for n in await self._store.natives(batch_id) if n.state == "in_progress"]
            if not open_:
                break
            for native in open_:
                # each native batch holds one provider's items of one model (its price)
                target = targets.get(native.provider_batch_id) or await self._target_of(
                    batch_id, native.provider_batch_id
                )
                if target is None:
                    continue
                targets[native.provider_batch_id] = target
                api = self._api(target)
                lost: LlmeshError | None = None
                try:
                    if (
                        current.state is BatchState.CANCELLING
                        and native.provider_batch_id not in cancel_sent
                    ):
                        await api.cancel(native.provider_batch_id)
                        cancel_sent.add(native.provider_batch_id)
                    status = await api.status(native.provider_batch_id)
                except LlmeshError as exc:
                    if exc.reason is not Reason.BATCH_NOT_FOUND:
                        raise
                    # the provider no longer knows the batch: it ended without results
                    lost = exc
                    status = NativeStatus(NativeState.FAILED, 0, 0, 0)
                if status.state is NativeState.IN_PROGRESS:
                    continue
                if lost is None:
                    async for result in api.results(native.provider_batch_id):
                        await self._write(batch_id, caller, target, result, item_result)
                # an item the provider's batch ended without a result: a dead letter
                # (retrying submits it again), or cancelled with its batch
                cancelled = status.state is NativeState.CANCELLED or (
                    lost is not None and current.state is BatchState.CANCELLING
                )
                state = ItemState.CANCELLED if cancelled else ItemState.DEAD
                error = lost or LlmeshError(
                    Reason.UPSTREAM_UNAVAILABLE,
                    f"the provider's batch {native.provider_batch_id} ended "
                    f"{status.state.value} without a result for this item",
                )
                await self._store.fail_unfinished(
                    batch_id,
                    native.provider_batch_id,
                    state,
                    _ender(item_result, state, None if cancelled else error),
                )
                await self._store.set_native_state(
                    batch_id, native.provider_batch_id, _ENDED[status.state]
                )
                self._notify(batch_id)
            await asyncio.sleep(wait)
            wait = min(wait * 1.5, self._settings.native_poll_max)
        await self._settle(batch_id)

    async def _recover(self, batch_id: str, targets: dict[str, FirstTarget]) -> None:
        """Find each submission still marked ``submitting`` at its provider by its key: the
        batch found is adopted; one that never arrived frees its items to be submitted."""
        for native in await self._store.natives(batch_id):
            if native.state != "submitting":
                continue
            key = native.provider_batch_id
            target = await self._target_of(batch_id, key)
            if target is None:
                await self._store.release_native(batch_id, key)
                continue
            count = await self._store.native_item_count(batch_id, key)
            try:
                found = await self._api(target).find(key, count)
            except LlmeshError as exc:
                if exc.retryable:
                    raise  # looked up again when the batch runs again
                # no batch API here any more: the items are submitted (and refused) anew
                log.warning("batch %s: submission %s cannot be looked up: %s", batch_id, key, exc)
                found = None
            if found is None:
                log.info("batch %s: submission %s never reached %s", batch_id, key, target.provider)
                await self._store.release_native(batch_id, key)
                continue
            log.info(
                "batch %s: submission %s found at %s as %s", batch_id, key, target.provider, found
            )
            await self._store.adopt_native(batch_id, key, found)
            targets[found] = target

    async def _target_of(self, batch_id: str, provider_batch_id: str) -> FirstTarget | None:
        """The first target of an item of a native batch (after a restart)."""
        data = await self._store.native_item_input(batch_id, provider_batch_id)
        if data is None:
            return None
        return self._calls.first_target(batches_pb2.BatchItem.FromString(data))

    async def _submit(
        self, batch_id: str, items: list[PendingItem], targets: dict[str, FirstTarget]
    ) -> None:
        # one native batch per provider and model: OpenAI's batch API takes a single model
        # per batch, and each item is priced at its own model's batch rate
        groups: dict[tuple[str, str], list[tuple[PendingItem, batches_pb2.BatchItem]]] = {}
        firsts: dict[tuple[str, str], FirstTarget] = {}
        for item in items:
            proto = batches_pb2.BatchItem.FromString(item.input)
            target = self._calls.first_target(proto)
            key = (target.provider, target.model)
            firsts.setdefault(key, target)
            groups.setdefault(key, []).append((item, proto))
        for (provider, _model), group in groups.items():
            ids = [item.custom_id for item, _ in group]
            target = firsts[(provider, _model)]
            submission = f"llmesh-submit-{int(time.time())}-{uuid.uuid4().hex[:16]}"
            try:
                api = self._api(target)
                native_items = [self._calls.native_item(proto) for _, proto in group]
                # the key is stored before the provider sees the batch: a crash before its
                # id is stored is recovered by finding the batch by its key, not resubmitted
                await self._store.reserve_native(batch_id, provider, submission, ids)
                provider_batch_id = await api.submit(native_items, submission)
            except LlmeshError as exc:
                if exc.retryable:
                    raise  # the executor tries the batch again after a pause (and finds
                    # the submission at the provider first, if it arrived)
                await self._store.release_native(batch_id, submission)
                # refused for good (no batch API, a request the provider rejects): the
                # items fail with the reason, the rest of the batch goes on
                from llmesh.services.batch.executor import item_result

                log.warning("batch %s: %s refused its native batch: %s", batch_id, provider, exc)
                await self._store.fail_items(
                    batch_id, ids, ItemState.FAILED, _ender(item_result, ItemState.FAILED, exc)
                )
                self._notify(batch_id)
                continue
            targets[provider_batch_id] = target
            await self._store.adopt_native(batch_id, submission, provider_batch_id)
            log.info(
                "batch %s: %d items submitted to %s as %s",
                batch_id,
                len(ids),
                provider,
                provider_batch_id,
            )

    async def _write(
        self,
        batch_id: str,
        caller: Caller,
        target: FirstTarget,
        result: NativeResult,
        item_result: Callable[..., bytes],
    ) -> None:
        if result.error is not None:
            error = result.error
            state = ItemState.DEAD if error.retryable else ItemState.FAILED
            data = item_result(result.custom_id, state, 1, error=error)
        else:
            cost = await self._calls.record_native(caller, target, result, batch_id)
            reply = ItemReply(chat=result.chat, embed=result.embed, cost_usd=cost)
            state = ItemState.SUCCEEDED
            data = item_result(result.custom_id, state, 1, reply=reply)
        await self._store.finish(batch_id, result.custom_id, state, data, attempts=1)

    async def _settle(self, batch_id: str) -> None:
        natives = await self._store.natives(batch_id)
        current = await self._store.get(batch_id)
        if current is None:
            return
        ends = {n.state for n in natives}
        counts = await self._store.counts(batch_id)
        detail = None
        if current.state is BatchState.CANCELLING:
            from llmesh.services.batch.executor import cancelled_result

            await self._store.cancel_pending(batch_id, cancelled_result)
            final = BatchState.CANCELLED
        elif ends == {"failed"} or (not natives and counts[ItemState.SUCCEEDED] == 0):
            final = BatchState.FAILED
            detail = "the providers' batch APIs refused or failed the batch"
        elif ends == {"expired"}:
            final = BatchState.EXPIRED
        else:
            await self._store.complete_if_done(batch_id)  # else items came back meanwhile
            self._notify(batch_id)
            return
        await self._store.set_state(
            batch_id,
            final,
            expect=frozenset({BatchState.IN_PROGRESS, BatchState.CANCELLING}),
            finished=True,
            detail=detail,
        )
        self._notify(batch_id)


def _ender(
    item_result: Callable[..., bytes], state: ItemState, error: LlmeshError | None
) -> Callable[[str], bytes]:
    """The result each unfinished item of an ended native batch gets."""

    def result(custom_id: str) -> bytes:
        return item_result(custom_id, state, 1, error=error)

    return result
