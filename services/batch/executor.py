"""Running batches: one task per unfinished batch this process executes.

`BatchRunner` claims batches in the store (a batch has one executor process at a time: the
ledger instance that claimed it, while its lease lives), resumes them at start-up and takes
over those whose executor died. A mesh-run batch sends its pending items through the call
path (`ItemCalls.run`) at most `concurrency` at a time and `items_per_second` per second
over the whole process, writing each result as it completes; a provider-native batch is
left to `NativeRun`. A finished item is never run again; an item in flight when its
process died is run again by the next executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from llmesh.services.batch.calls import ItemCalls, ItemReply
from llmesh.services.batch.convert import error_to_dict, error_to_proto, timestamp
from llmesh.services.batch.model import (
    BatchMode,
    BatchRow,
    BatchState,
    ItemState,
    PendingItem,
)
from llmesh.services.batch.native_run import NativeRun
from llmesh.services.batch.native_seam import NativeClients, NativeFactory
from llmesh.services.batch.store import BatchStore
from llmesh.services.common.batch_settings import BatchConfig
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.caller import Caller
from llmesh.v1 import batches_pb2

__all__ = ["BatchRunner", "item_result"]

log = logging.getLogger("llmesh.batch")

CLOSE_TIMEOUT = 5.0
"""Seconds the executor's shutdown waits for its cancelled batch tasks before it goes on."""
_WAITS = frozenset({Reason.RATE_LIMIT_EXCEEDED, Reason.QUEUE_FULL})
"""The tenant's (or a target's) own limits said "not now": the item waits its turn and the
wait is not an attempt."""

DeadInstances = Callable[[], Awaitable[Sequence[str]]]
"""The ledger instances on this machine whose process is gone (their batches are free)."""


def item_result(
    custom_id: str,
    state: ItemState,
    attempts: int,
    *,
    reply: ItemReply | None = None,
    error: LlmeshError | None = None,
) -> bytes:
    """A serialized `BatchItemResult`."""
    out = batches_pb2.BatchItemResult(
        custom_id=custom_id,
        state=batches_pb2.BatchItemState.Value(f"BATCH_ITEM_STATE_{state.name}"),
        attempts=attempts,
    )
    if reply is not None:
        if reply.chat is not None:
            out.chat.CopyFrom(reply.chat)
        elif reply.embed is not None:
            out.embed.CopyFrom(reply.embed)
        out.cost_usd = reply.cost_usd
    if error is not None:
        out.error.CopyFrom(error_to_proto(error))
    out.finished_at.CopyFrom(timestamp(time.time()))
    return bytes(out.SerializeToString())


def cancelled_result(custom_id: str, attempts: int) -> bytes:
    """The result of an item its batch's cancel stopped before it ran (again)."""
    return item_result(custom_id, ItemState.CANCELLED, attempts)


class _Pace:
    """Starts at most `rate` items per second (0: no limit), over every batch."""

    def __init__(self, rate: float) -> None:
        self._gap = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self._gap:
            return
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self._gap
        if start > now:
            await asyncio.sleep(start - now)


class _Changes:
    """Wakes the results streams of a batch when it changes in this process."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def notify(self, batch_id: str) -> None:
        event = self._events.pop(batch_id, None)
        if event is not None:
            event.set()

    async def wait(self, batch_id: str, timeout: float) -> None:
        event = self._events.setdefault(batch_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # no task of its own, as wait_for makes
                await event.wait()


class BatchRunner:
    """Executes this process's share of the stored batches."""

    def __init__(
        self,
        store: BatchStore,
        calls: ItemCalls,
        settings: BatchConfig,
        *,
        instance_id: str,
        dead_instances: DeadInstances | None = None,
        native: NativeFactory | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._calls = calls
        self._me = instance_id
        self._dead = dead_instances
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._pace = _Pace(settings.items_per_second)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._scanner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.changes = _Changes()
        """Notified whenever a batch's results or state change here."""
        self.native = (
            native
            if native is None or isinstance(native, NativeClients)
            else (NativeClients(native))
        )
        """The providers' batch clients, shared with the servicer; closed with the executor."""
        self._native = NativeRun(store, calls, settings, self.native, self.changes.notify)
        self._closing = False

    async def start(self) -> None:
        """Resume every unfinished batch no live process executes, then keep looking."""
        if not self.settings.enabled or self._scanner is not None:
            return
        await self._scan()
        self._scanner = asyncio.create_task(self._scan_loop(), name="llmesh-batch-scan")

    def wake(self) -> None:
        """Look for batches to run now (one was created, retried or resumed)."""
        self._wake.set()

    async def aclose(self) -> None:
        """Stop every batch task; their items in flight run again under the next executor."""
        self._closing = True
        tasks = [t for t in (self._scanner, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:  # a task stuck past its cancellation must not hold the shutdown
            done, _ = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved: a batch task logs its own failures
        for batch_id in list(self._tasks):
            with contextlib.suppress(Exception):
                await self.store.release(batch_id, self._me)
        self._tasks.clear()
        if self.native is not None:
            await self.native.aclose()

    def running(self, batch_id: str) -> bool:
        """Whether this process executes the batch right now."""
        task = self._tasks.get(batch_id)
        return task is not None and not task.done()

    async def _scan_loop(self) -> None:
        while True:
            # the wait runs in this task: wait_for would start a task for it every poll
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._scan()
            except Exception:  # the database is away: try again next round
                log.exception("batch: scanning for batches to run failed")

    async def _scan(self) -> None:
        dead = await self._dead() if self._dead is not None else ()
        for row in await self.store.runnable():
            if self.running(row.batch_id) or self._closing:
                continue
            if await self.store.claim(row.batch_id, self._me, dead):
                self._tasks[row.batch_id] = asyncio.create_task(
                    self._run(row.batch_id), name=f"llmesh-batch-{row.batch_id}"
                )

    async def _run(self, batch_id: str) -> None:
        try:
            row = await self.store.get(batch_id)
            if row is None:
                return
            if row.mode is BatchMode.PROVIDER_NATIVE:
                await self._native.run(row)
            else:
                await self._run_mesh(row)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("batch %s: its executor failed; it is taken up again", batch_id)
            await asyncio.sleep(self.settings.poll_interval)
        finally:
            self.changes.notify(batch_id)
            if not self._closing:
                self._tasks.pop(batch_id, None)
                with contextlib.suppress(Exception):
                    await self.store.release(batch_id, self._me)
                self.wake()  # a batch retried while this one ended is picked up again

    async def _run_mesh(self, row: BatchRow) -> None:
        batch_id = row.batch_id
        await self.store.set_state(
            batch_id,
            BatchState.IN_PROGRESS,
            expect=frozenset({BatchState.QUEUED, BatchState.IN_PROGRESS}),
            started=True,
            detail="",
        )
        self.changes.notify(batch_id)
        caller = Caller(tenant=row.tenant, key_id=row.key_id)
        stop: list[LlmeshError] = []
        halt = asyncio.Event()
        """Set once the batch stops (cancelled, or paused by its budget): items between
        attempts go back to pending instead of trying again."""
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                current = await self.store.get(batch_id)
                if current is None or current.state is not BatchState.IN_PROGRESS or stop:
                    halt.set()
                    break
                page = await self.store.take_pending(batch_id, self.settings.concurrency)
                if not page:
                    if not in_flight:
                        break
                    # look at the batch's state again now and then: a cancel comes that way
                    await asyncio.wait(
                        in_flight,
                        timeout=self.settings.poll_interval,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    continue
                left: list[PendingItem] = list(page)
                while left and not stop:
                    await self._slots.acquire()
                    await self._pace.wait()
                    item = left.pop(0)
                    work = self._item(batch_id, caller, item, stop, halt)
                    task = asyncio.create_task(work)
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if left:
                    await self.store.requeue(batch_id, [i.custom_id for i in left])
            if in_flight:
                await asyncio.gather(*in_flight)
        finally:
            for task in in_flight:
                task.cancel()
        await self._settle(batch_id, stop)

    async def _settle(self, batch_id: str, stop: list[LlmeshError]) -> None:
        """The batch's state once its loop ends: paused, cancelled, completed, or running on
        (items went back to pending meanwhile)."""
        current = await self.store.get(batch_id)
        if current is None:
            return
        if stop:
            await self.store.set_state(
                batch_id,
                BatchState.PAUSED_BUDGET,
                expect=frozenset({BatchState.IN_PROGRESS}),
                detail=f"paused: {stop[0]}",
            )
        elif current.state is BatchState.CANCELLING:
            await self.store.cancel_pending(batch_id, cancelled_result)
            await self.store.set_state(
                batch_id,
                BatchState.CANCELLED,
                expect=frozenset({BatchState.CANCELLING}),
                finished=True,
            )
        else:  # completed, unless items went back to pending meanwhile (then run again)
            await self.store.complete_if_done(batch_id)
        self.changes.notify(batch_id)

    async def _item(
        self,
        batch_id: str,
        caller: Caller,
        item: PendingItem,
        stop: list[LlmeshError],
        halt: asyncio.Event,
    ) -> None:
        try:
            await self._attempts(batch_id, caller, item, stop, halt)
        finally:
            self._slots.release()
            self.changes.notify(batch_id)

    async def _attempts(
        self,
        batch_id: str,
        caller: Caller,
        item: PendingItem,
        stop: list[LlmeshError],
        halt: asyncio.Event,
    ) -> None:
        request = batches_pb2.BatchItem.FromString(item.input)
        attempts, trail = item.attempts, list(item.trail)
        waits = 0
        while True:
            if stop or halt.is_set():
                await self.store.requeue(batch_id, [item.custom_id])
                return
            try:
                reply = await self._calls.run(request, caller, batch_id)
            except LlmeshError as exc:
                error = exc
            except Exception as exc:  # never lose the item: it becomes a dead letter
                log.exception("batch %s item %s: unexpected failure", batch_id, item.custom_id)
                error = LlmeshError(Reason.INTERNAL, f"unexpected failure: {type(exc).__name__}")
            else:
                attempts += 1
                data = item_result(item.custom_id, ItemState.SUCCEEDED, attempts, reply=reply)
                await self.store.finish(
                    batch_id, item.custom_id, ItemState.SUCCEEDED, data, attempts=attempts
                )
                return
            if error.reason is Reason.BUDGET_EXCEEDED:
                stop.append(error)
                halt.set()
                await self.store.requeue(batch_id, [item.custom_id])
                return
            if error.reason in _WAITS:
                waits += 1
                await _pause(halt, self._wait_time(error, waits))
                continue
            attempts += 1
            trail.append(error_to_dict(error, attempts))
            if error.retryable and error.reason is not Reason.INTERNAL:
                if attempts < self.settings.max_attempts:
                    await self.store.record_attempt(batch_id, item.custom_id, attempts, trail)
                    await _pause(halt, self.settings.retry_backoff * 2.0 ** (attempts - 1))
                    continue
                state = ItemState.DEAD
            else:
                state = ItemState.DEAD if error.reason is Reason.INTERNAL else ItemState.FAILED
            data = item_result(item.custom_id, state, attempts, error=error)
            await self.store.finish(
                batch_id, item.custom_id, state, data, attempts=attempts, trail=trail
            )
            return

    def _wait_time(self, error: LlmeshError, waits: int) -> float:
        if error.retry_after is not None and error.retry_after > 0:
            return min(float(error.retry_after), 60.0)
        return min(0.1 * 2.0 ** min(waits, 10), 10.0)


async def _pause(halt: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when the batch stops meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await halt.wait()
