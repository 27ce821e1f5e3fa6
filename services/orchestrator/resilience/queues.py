"""Per-target concurrency limits with a bounded FIFO wait queue and a queue timeout.

A provider model often serves only so many concurrent streams per key; past that, calls
wait here in arrival order instead of piling onto the upstream. When the queue is full a
call fails at once with QUEUE_FULL (and a retry-after), so load is shed instead of queued
without bound; a call that waits longer than `queue_timeout` fails with QUEUE_FULL too.

A released slot is handed straight to the first waiter (no barging), and a waiter that is
cancelled or times out leaves the queue at once, passing on a slot granted in the meantime.
With ``max_concurrency=0`` `slot()` returns one shared no-op context manager: no counting,
no lock, no semaphore on the path (and `in_flight` / `queued` report 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.resilience_settings import QueueSettings

__all__ = ["QueueSettings", "TargetLimiter"]

_HOLD_EMA = 0.2
"""Weight of the newest hold time in each target's moving average."""


class _Lane:
    """One target's slots: calls in flight, waiters in arrival order, typical hold time."""

    __slots__ = ("hold", "in_flight", "waiters")

    def __init__(self) -> None:
        self.in_flight = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.hold: float | None = None


class _Unlimited:
    """The no-op slot of unlimited mode."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_UNLIMITED = _Unlimited()


class _Slot:
    """One use of a target's slot: acquire on enter, release (or hand over) on exit."""

    __slots__ = ("_limiter", "_started", "_target")

    def __init__(self, limiter: TargetLimiter, target: str) -> None:
        self._limiter = limiter
        self._target = target
        self._started = 0.0

    async def __aenter__(self) -> None:
        await self._limiter._acquire(self._target)
        self._started = self._limiter._clock()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._limiter._release(self._target, self._limiter._clock() - self._started)


class TargetLimiter:
    """Concurrency limits per target; see the module docstring."""

    def __init__(
        self, settings: QueueSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """`clock` times how long slots are held, for QUEUE_FULL's retry-after."""
        self._settings = settings
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}

    @property
    def limited(self) -> bool:
        """Whether targets have slots to wait for (``resilience.queue.max_concurrency``)."""
        return self._settings.max_concurrency > 0

    def slot(self, target: str) -> AbstractAsyncContextManager[None]:
        """``async with limiter.slot(target):`` runs the block holding one of its slots."""
        if self._settings.max_concurrency == 0:
            return _UNLIMITED
        return _Slot(self, target)

    def in_flight(self, target: str) -> int:
        """Calls holding a slot of `target`."""
        lane = self._lanes.get(target)
        return 0 if lane is None else lane.in_flight

    def targets(self) -> list[str]:
        """The targets whose slots have been used (in first-use order)."""
        return list(self._lanes)

    def queued(self, target: str) -> int:
        """Calls waiting for a slot of `target`."""
        lane = self._lanes.get(target)
        return 0 if lane is None else len(lane.waiters)

    def retry_after(self, target: str) -> float:
        """Seconds until the current queue has likely drained: the waiters ahead times the
        average hold time per slot, capped by `queue_timeout` (every waiter has left by then)."""
        lane = self._lanes.get(target)
        timeout = self._settings.queue_timeout
        if lane is None or lane.hold is None:
            return timeout
        ahead = len(lane.waiters) + 1
        return min(ahead * lane.hold / self._settings.max_concurrency, timeout)

    async def _acquire(self, target: str) -> None:
        lane = self._lanes.get(target)
        if lane is None:
            lane = self._lanes[target] = _Lane()
        settings = self._settings
        if lane.in_flight < settings.max_concurrency and not lane.waiters:
            lane.in_flight += 1
            return
        if len(lane.waiters) >= settings.max_queue:
            raise LlmeshError(
                Reason.QUEUE_FULL,
                f"{target}: {lane.in_flight} calls in flight and {len(lane.waiters)} waiting"
                f" (max_concurrency {settings.max_concurrency}, max_queue {settings.max_queue})",
                retry_after=self.retry_after(target),
                metadata={"target": target},
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.waiters.append(waiter)
        try:
            async with asyncio.timeout(settings.queue_timeout):
                await waiter
        except BaseException as exc:  # cancelled or timed out: leave no trace
            if waiter.done() and not waiter.cancelled():
                self._release(target, None)  # a slot came with the cancel: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):  # a release may have skipped it already
                    lane.waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise LlmeshError(
                    Reason.QUEUE_FULL,
                    f"{target}: no free slot within the queue timeout of"
                    f" {settings.queue_timeout:g} s ({lane.in_flight} calls in flight)",
                    retry_after=self.retry_after(target),
                    metadata={"target": target},
                ) from None
            raise

    def _release(self, target: str, held: float | None) -> None:
        lane = self._lanes[target]
        if held is not None:
            lane.hold = held if lane.hold is None else lane.hold + _HOLD_EMA * (held - lane.hold)
        while lane.waiters:
            waiter = lane.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; in_flight stays
                return
        lane.in_flight -= 1
