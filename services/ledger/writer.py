"""The ledger's write path: buffer on the hot path, write in batches in the background.

`LedgerWriter.record` only appends to an in-memory buffer: it never awaits, blocks or
raises. A background task writes the buffer to the store every `flush_interval` seconds
(sooner once `max_batch` records wait), on a fixed cadence measured from the start of each
write.

Crash bound: a record handed over at time t is in a committed transaction by
t + flush_interval + W, where W is the duration of one batch write (about a millisecond
for SQLite on a local disk), as long as writes keep up. So ``kill -9`` loses at most the
records of the last flush interval, 50 ms by default (tests/ledger/test_crash.py proves
it). A graceful `aclose` writes everything. A failing write keeps its records and is
retried on the next tick; only a full buffer (`max_buffer`) or a record the store keeps
rejecting on its own while it accepts others is dropped, with an error logged.

Calls in flight: with an `Instance`, `started` hands over the row a call would get if this
process died now (``interrupted``, estimated usage) just before its request leaves for a
provider. It goes out with the next flush, and only if the call is still running then: a
call whose final record comes first never costs a write of its own. The final record
deletes the start row in the transaction that writes it. The writer renews the instance's
lease every third of `lease` and then closes the started calls of instances that are gone
(see `llmesh.services.ledger.instances`), so after ``kill -9`` the ledger misses a call
that reached a provider for at most one flush interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from itertools import islice

from llmesh.services.ledger.instances import Instance
from llmesh.services.ledger.records import UsageRecord
from llmesh.services.ledger.recovery import close_interrupted
from llmesh.services.ledger.stores import LedgerStore

__all__ = ["LedgerWriter"]

log = logging.getLogger("llmesh.ledger")

_LOG_EVERY = 10.0
"""Seconds between repeated log lines about the same ongoing problem."""
_STRIKES = 3
"""Isolated refusals after which a record the store takes no other way is dropped."""


class LedgerWriter:
    """Batches usage records into a `LedgerStore` from a background task."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        flush_interval: float = 0.05,
        max_batch: int = 500,
        max_buffer: int = 100_000,
        close_retries: int = 5,
        instance: Instance | None = None,
        lease: float = 15.0,
    ) -> None:
        if flush_interval <= 0 or max_batch < 1 or max_buffer < 1 or lease <= 0:
            raise ValueError("flush_interval, max_batch, max_buffer and lease must be positive")
        self.store = store
        """Where the records go; the writer does not close it."""
        self.flush_interval = flush_interval
        """Seconds between background writes: the most a crash can lose."""
        self.max_batch = max_batch
        """Records per store write; a full batch wakes the writer early."""
        self.max_buffer = max_buffer
        """Records held while the store fails; past this, new records are dropped."""
        self.close_retries = close_retries
        """Extra attempts `aclose` makes when the store fails at shutdown."""
        self.instance = instance
        """This process as the owner of its calls in flight; None: `started` records nothing."""
        self.lease = lease
        """Seconds the instance's lease lasts; renewed every third of it."""
        self.closed_interrupted = 0
        """Calls of dead instances this writer closed as interrupted."""
        self.written = 0
        """Records written so far."""
        self.dropped = 0
        """Records lost: buffer full, writer closed, or rejected by the store."""
        self._buf: deque[UsageRecord] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._failures = 0
        self._strikes: dict[str, int] = {}
        self._last_drop_log = float("-inf")
        self._last_fail_log = float("-inf")
        self._starts: dict[str, Callable[[], UsageRecord]] = {}  # not written yet
        self._open: set[str] = set()  # start rows written (or being written), not yet ended
        self._ended: list[str] = []  # start rows to delete with no final record
        self._next_beat = float("-inf")

    @property
    def pending(self) -> int:
        """Records waiting to be written."""
        return len(self._buf)

    @property
    def oldest_pending(self) -> float | None:
        """When the oldest record waiting to be written was made (its ``ts``), or None."""
        buf = self._buf
        return buf[0].ts if buf else None

    @property
    def running(self) -> bool:
        """True while the background task runs."""
        return self._task is not None and not self._task.done()

    def record(self, rec: UsageRecord) -> None:
        """Hand one record over; O(1), never blocks, awaits or raises."""
        if self._closed:
            self._drop(1, "the ledger writer is closed")
            return
        buf = self._buf
        if len(buf) >= self.max_buffer:
            self._drop(1, f"the buffer is full ({self.max_buffer} records wait for the store)")
            return
        buf.append(rec)
        if self._starts:
            self._starts.pop(rec.request_id, None)  # ended before its start was written
        if len(buf) >= self.max_batch:
            self._wake.set()

    def started(self, request_id: str, row: Callable[[], UsageRecord]) -> None:
        """Hand over how to build the row of call `request_id` in flight (replacing an earlier
        one); `row` is called only if a flush finds the call still running. O(1), never
        blocks. Ignored without an `instance` or once closed."""
        if self.instance is not None and not self._closed:
            self._starts[request_id] = row

    def discard(self, request_id: str) -> None:
        """Forget the call in flight `request_id`: it ended with nothing to record."""
        self._starts.pop(request_id, None)
        if request_id in self._open:
            self._ended.append(request_id)

    async def register(self) -> int:
        """Take the instance's lease and close the calls of instances that are gone now (at
        start-up, before serving); how many calls were closed. Errors propagate."""
        if self.instance is None:
            return 0
        await self.store.heartbeat(self.instance, self.lease)
        self._next_beat = time.monotonic() + self.lease / 3
        closed = await close_interrupted(self.store, self.instance.instance_id)
        self.closed_interrupted += closed
        return closed

    def start(self) -> None:
        """Start the background task (on the running loop); idempotent."""
        if self._task is None and not self._closing:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="llmesh-ledger-writer")

    async def flush(self) -> None:
        """Write everything buffered now; a failed write keeps its records for later."""
        await self._write_pending()

    async def aclose(self) -> None:
        """Stop the background task and write every buffered record (idempotent)."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        for attempt in range(self.close_retries + 1):
            if await self._write_pending():
                break
            if attempt < self.close_retries:
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        self._closed = True
        if self._buf:
            lost = len(self._buf)
            self._buf.clear()
            self.dropped += lost
            log.error("usage ledger: %d records lost at shutdown: the store kept failing", lost)
        if self.instance is not None:
            try:  # calls still open (their final records lost) become the next sweep's
                await self.store.retire(self.instance.instance_id)
            except Exception as exc:
                log.warning("usage ledger: could not release the instance's lease: %s", exc)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + self.flush_interval
        while not self._closing:
            delay = next_tick - loop.time()
            if delay > 0 and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            next_tick = loop.time() + self.flush_interval
            try:
                await self._write_pending()
            except Exception:  # a bug, not a store failure: keep the writer alive
                log.exception("usage ledger: unexpected error in the writer")

    async def _write_pending(self) -> bool:
        """Write the buffer in batches until it is empty; False if a write failed."""
        async with self._lock:
            if not await self._keep_lease():
                return False
            buf = self._buf
            builders = list(self._starts.items())
            starts = self._build(builders)
            ended, self._ended = self._ended, []
            first = True
            while buf or (first and (starts or ended)):
                batch = list(islice(buf, self.max_batch))
                if not first:
                    starts, ended, builders = [], [], []
                finals = [r.request_id for r in batch if r.request_id in self._open]
                self._open.update(r.request_id for r in starts)
                try:
                    await self._write(batch, starts, [*ended, *finals])
                except Exception as exc:
                    self._open.difference_update(r.request_id for r in starts)
                    self._ended[:0] = ended
                    await self._on_failure(batch, exc)
                    return False
                first = False
                for request_id, build in builders:
                    if self._starts.get(request_id) is build:
                        del self._starts[request_id]
                self._open.difference_update(ended)
                self._open.difference_update(finals)
                for _ in batch:
                    buf.popleft()
                self.written += len(batch)
                if self._strikes:
                    for rec in batch:
                        self._strikes.pop(rec.request_id, None)
                if self._failures:
                    log.warning("usage ledger: the store accepts writes again")
                    self._failures = 0
            return True

    def _build(self, builders: list[tuple[str, Callable[[], UsageRecord]]]) -> list[UsageRecord]:
        rows = []
        for request_id, build in builders:
            try:
                rows.append(build())
            except Exception:  # a bug: the call's final record is still written
                self._starts.pop(request_id, None)
                log.exception("usage ledger: building the row of %s in flight failed", request_id)
        return rows

    async def _write(
        self, records: list[UsageRecord], starts: list[UsageRecord], ended: list[str]
    ) -> None:
        if not starts and not ended:
            await self.store.write(records)  # the common case, on any store
            return
        assert self.instance is not None or not starts
        owner = self.instance.instance_id if self.instance is not None else ""
        await self.store.write(records, starts, owner=owner, ended=ended)

    async def _keep_lease(self) -> bool:
        """Renew the lease when due, then close the calls of instances that are gone; False
        if the lease could not be renewed (nothing is written without one)."""
        if self.instance is None or time.monotonic() < self._next_beat:
            return True
        try:
            await self.store.heartbeat(self.instance, self.lease)
        except Exception as exc:
            self._failures += 1
            now = time.monotonic()
            if self._failures == 1 or now - self._last_fail_log >= _LOG_EVERY:
                self._last_fail_log = now
                log.warning(
                    "usage ledger: renewing the lease failed (%s: %s)", type(exc).__name__, exc
                )
            return False
        self._next_beat = time.monotonic() + self.lease / 3
        try:
            closed = await close_interrupted(self.store, self.instance.instance_id)
        except Exception as exc:
            log.warning(
                "usage ledger: closing interrupted calls failed (%s: %s)", type(exc).__name__, exc
            )
        else:
            self.closed_interrupted += closed
        return True

    async def _on_failure(self, batch: list[UsageRecord], exc: Exception) -> None:
        self._failures += 1
        now = time.monotonic()
        if self._failures == 1 or now - self._last_fail_log >= _LOG_EVERY:
            self._last_fail_log = now
            log.warning(
                "usage ledger: writing %d records failed (%s: %s); %d pending, retrying",
                len(batch),
                type(exc).__name__,
                exc,
                len(self._buf),
            )
        # Retries of the same batch keep failing: find out whether one record is to blame.
        if self._failures >= 2 and self._failures & (self._failures - 1) == 0:
            await self._isolate(batch)

    async def _isolate(self, batch: list[UsageRecord]) -> None:
        """Write the batch's records one by one; drop those the store keeps rejecting.

        A record is dropped only after the store refused it alone in `_STRIKES` passes
        that each wrote some other record: when every write fails the store is at fault,
        and all records are kept.
        """
        try:
            await self.store.count()
        except Exception:
            return  # the store does not answer at all
        rejected: list[tuple[UsageRecord, Exception]] = []
        for rec in batch:
            ended = [rec.request_id] if rec.request_id in self._open else []
            try:
                await self._write([rec], [], ended)
            except Exception as exc:
                rejected.append((rec, exc))
            else:
                self.written += 1
                self._strikes.pop(rec.request_id, None)
                self._open.difference_update(ended)
        for _ in batch:
            self._buf.popleft()
        kept: list[UsageRecord] = []
        store_works = len(rejected) < len(batch)
        if store_works:
            log.warning("usage ledger: the store accepts writes again")
            self._failures = 0
        for rec, error in rejected:
            strikes = self._strikes.get(rec.request_id, 0) + store_works
            if strikes < _STRIKES:
                self._strikes[rec.request_id] = strikes
                kept.append(rec)
                continue
            self._strikes.pop(rec.request_id, None)
            self.dropped += 1
            log.error(
                "usage ledger: dropped the record of %s: the store rejected it alone "
                "%d times while taking others (%s: %s)",
                rec.request_id,
                strikes,
                type(error).__name__,
                error,
            )
        self._buf.extendleft(reversed(kept))

    def _drop(self, n: int, why: str) -> None:
        self.dropped += n
        now = time.monotonic()
        if now - self._last_drop_log >= _LOG_EVERY:
            self._last_drop_log = now
            log.error("usage ledger: dropping records: %s (%d dropped so far)", why, self.dropped)
