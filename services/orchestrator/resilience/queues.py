"""Per-target concurrency limits with a bounded, tiered wait queue and a queue timeout.

A provider model often serves only so many concurrent streams per key; past that, calls
wait here instead of piling onto the upstream. The queue serves higher priority tiers first
(`llmesh.services.core.priority`) and each tier in arrival order. When the queue is full,
a call evicts the newest waiter of the lowest tier below its own, which fails with
QUEUE_FULL (metadata ``shed``) and a retry-after; with no lower waiter to evict the arriving
call fails at once with QUEUE_FULL. So lower tiers are shed first, and a critical call is
never shed (nothing ranks above it). A call that waits longer than `queue_timeout` fails
with QUEUE_FULL too.

A released slot is handed straight to the first waiter of the highest tier (no barging),
and a waiter that is cancelled, times out or is shed leaves the queue at once, passing on a
slot granted in the meantime. With ``max_concurrency=0`` `slot()` returns one shared no-op
context manager: no counting, no lock, no tier, no semaphore on the path (and `in_flight` /
`queued` report 0).
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
from llmesh.services.core.priority import Priority

__all__ = ["QueueSettings", "TargetLimiter"]

_HOLD_EMA = 0.2
"""Weight of the newest hold time in each target's moving average."""


_TIERS = tuple(Priority)
_HIGHEST_FIRST = tuple(reversed(_TIERS))


class _Lane:
    """One target's slots: calls in flight, waiters per tier in arrival order, typical hold
    time."""

    __slots__ = ("hold", "in_flight", "tiers")

    def __init__(self) -> None:
        self.in_flight = 0
        self.tiers: tuple[deque[asyncio.Future[None]], ...] = tuple(deque() for _ in _TIERS)
        """Waiters of each tier, indexed by `Priority` value."""
        self.hold: float | None = None

    def waiting(self) -> int:
        return sum(len(q) for q in self.tiers)

    def waiting_from(self, priority: Priority) -> int:
        """Waiters served before a new call of `priority`: its tier and those above."""
        return sum(len(self.tiers[p]) for p in _TIERS[priority:])


class _Unlimited:
    """The no-op slot of unlimited mode."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_UNLIMITED = _Unlimited()


class _Slot:
    """One use of a target's slot: acquire on enter, release (or hand over) on exit."""

    __slots__ = ("_limiter", "_priority", "_started", "_target")

    def __init__(self, limiter: TargetLimiter, target: str, priority: Priority) -> None:
        self._limiter = limiter
        self._target = target
        self._priority = priority
        self._started = 0.0

    async def __aenter__(self) -> None:
        await self._limiter._acquire(self._target, self._priority)
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

    def slot(
        self, target: str, priority: Priority = Priority.NORMAL
    ) -> AbstractAsyncContextManager[None]:
        """``async with limiter.slot(target, priority):`` runs the block holding one of its
        slots, waiting behind calls of its tier and above when there is none free."""
        if self._settings.max_concurrency == 0:
            return _UNLIMITED
        return _Slot(self, target, priority)

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
        return 0 if lane is None else lane.waiting()

    def queued_by_tier(self, target: str) -> dict[Priority, int]:
        """Calls waiting for a slot of `target`, per tier (every tier listed)."""
        lane = self._lanes.get(target)
        return {p: 0 if lane is None else len(lane.tiers[p]) for p in _TIERS}

    def retry_after(self, target: str, priority: Priority = Priority.BATCH) -> float:
        """Seconds until the queue ahead of a `priority` call has likely drained: the
        waiters of its tier and above times the average hold time per slot, capped by
        `queue_timeout` (every waiter has left by then)."""
        lane = self._lanes.get(target)
        timeout = self._settings.queue_timeout
        if lane is None or lane.hold is None:
            return timeout
        ahead = lane.waiting_from(priority) + 1
        return min(ahead * lane.hold / self._settings.max_concurrency, timeout)

    async def _acquire(self, target: str, priority: Priority) -> None:
        lane = self._lanes.get(target)
        if lane is None:
            lane = self._lanes[target] = _Lane()
        settings = self._settings
        if lane.in_flight < settings.max_concurrency and not lane.waiting():
            lane.in_flight += 1
            return
        if lane.waiting() >= settings.max_queue and not self._shed(target, lane, priority):
            raise LlmeshError(
                Reason.QUEUE_FULL,
                f"{target}: {lane.in_flight} calls in flight and {lane.waiting()} waiting"
                f" (max_concurrency {settings.max_concurrency}, max_queue {settings.max_queue})",
                retry_after=self.retry_after(target, priority),
                metadata={"target": target, "priority": priority.label},
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = lane.tiers[priority]
        queue.append(waiter)
        try:
            async with asyncio.timeout(settings.queue_timeout):
                await waiter
        except BaseException as exc:  # cancelled, timed out or shed: leave no trace
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(target, None)  # a slot came with the cancel: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):  # a release or shed removed it already
                    queue.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise LlmeshError(
                    Reason.QUEUE_FULL,
                    f"{target}: no free slot within the queue timeout of"
                    f" {settings.queue_timeout:g} s ({lane.in_flight} calls in flight)",
                    retry_after=self.retry_after(target),
                    metadata={"target": target, "priority": priority.label},
                ) from None
            raise

    def _shed(self, target: str, lane: _Lane, priority: Priority) -> bool:
        """Make room for a `priority` call in a full queue: fail the newest waiter of the
        lowest tier below it. False when no such waiter exists."""
        for tier in _TIERS[:priority]:
            queue = lane.tiers[tier]
            while queue:
                victim = queue.pop()
                if victim.done():  # cancelled, its task not yet resumed: its place is free
                    return True
                victim.set_exception(
                    LlmeshError(
                        Reason.QUEUE_FULL,
                        f"{target}: shed from a full queue (max_queue"
                        f" {self._settings.max_queue}) for a {priority.label} call",
                        retry_after=self.retry_after(target, tier),
                        metadata={"target": target, "priority": tier.label, "shed": "true"},
                    )
                )
                return True
        return False

    def _release(self, target: str, held: float | None) -> None:
        lane = self._lanes[target]
        if held is not None:
            lane.hold = held if lane.hold is None else lane.hold + _HOLD_EMA * (held - lane.hold)
        for tier in _HIGHEST_FIRST:
            queue = lane.tiers[tier]
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the slot changes hands; in_flight stays
                    return
        lane.in_flight -= 1
