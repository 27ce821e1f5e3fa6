"""Circuit breakers, one per ``provider/model`` target, on pybreaker's state machine.

pybreaker guards a function call while holding a threading lock, and its asyncio support
needs tornado; a stream is not a call either: it succeeds once its first event arrived and
fails if it breaks before its terminal event. So the engine reports outcomes itself and
these breakers drive pybreaker's `CircuitBreaker` without wrapping anything: outcomes go
through the state objects' `_handle_success` / `_handle_error` (counters, `fail_max`,
`success_threshold`, listeners' ``success`` / ``failure`` / ``state_change``), transitions
through its `open()` / `half_open()` / `close()`. Listeners' ``before_call`` never fires:
there is no wrapped call.

Time: pybreaker's own cool-down check (wall clock, whole seconds in Redis) is never used.
The storages in `breaker_storage` stamp `opened_at` with the injected clock and the
cool-down is computed here on that clock, so tests drive it with a fake clock and replicas
sharing Redis agree (the default clock is `time.time`, comparable across processes).

Half-open: one trial at a time. The first `check` after the cool-down moves the breaker to
half-open and takes a trial lease; other calls get CIRCUIT_OPEN until the trial reports
(`record_success` / `record_failure`) or the lease expires after `reset_timeout` (so an
abandoned trial cannot wedge the breaker). `success_threshold` trial successes close it; a
counted failure reopens it. With Redis the lease is shared, so it is one trial per target
across all replicas.

Counting: `record_failure(..., counted=False)` is a repeat of a failure already counted (a
retry of the same call by llmesh, or a client's retry of its call, see the README's
resilience section); it does not move a closed breaker toward open, but in half-open it
still ends the trial and reopens. CIRCUIT_OPEN errors carry the reason and message of
the counted failure that opened the breaker (the last one counted before it opened; kept in
the breaker's storage, so shared through Redis like its state).
Transitions are logged (WARNING on open, INFO otherwise) with the request id of the call
that caused them.

In-process state is handled inline on the event loop. Redis state uses pybreaker's
synchronous `redis` storage, so every operation runs on one dedicated thread (operations
stay ordered and never block the loop); when Redis fails, calls are let through (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import pybreaker
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.resilience_settings import COUNTED_BY_DEFAULT, BreakerSettings
from llmesh.services.orchestrator.resilience.breaker_storage import (
    MemoryStorage,
    RedisHealth,
    RedisStorage,
    Storage,
)

__all__ = ["COUNTED_BY_DEFAULT", "BreakerSettings", "BreakerView", "Breakers"]

_log = logging.getLogger("llmesh.orchestrator.breakers")
_T = TypeVar("_T")


@dataclass(frozen=True)
class BreakerView:
    """One breaker as shown to operators."""

    name: str
    state: str
    """``closed``, ``open`` or ``half-open``."""
    failure_count: int
    """Consecutive counted failures (pybreaker's fail counter)."""
    seconds_to_half_open: float | None
    """Cool-down left while open (0 once a trial may start); None otherwise."""


@dataclass(frozen=True)
class _Entry:
    breaker: pybreaker.CircuitBreaker
    storage: Storage


class Breakers:
    """The breakers of every target, created on first use; see the module docstring."""

    _redis_storage: type[RedisStorage] = RedisStorage

    def __init__(
        self,
        settings: BreakerSettings,
        *,
        clock: Callable[[], float] = time.time,
        listeners: Sequence[pybreaker.CircuitBreakerListener] = (),
    ) -> None:
        """`listeners` are pybreaker listeners; with Redis they run on the breakers' thread."""
        self._settings = settings
        self._clock = clock
        self._request_id = ""
        """The request whose operation runs now (ops are serialized), for transition logs."""
        self._listeners = (*listeners, _TransitionLog(self))
        self._entries: dict[str, _Entry] = {}
        self._states: dict[str, str] = {}
        """The state each breaker last moved to here (the metrics' view with Redis)."""
        self._redis: redis.Redis | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._health = RedisHealth(settings.redis_backoff)
        if settings.redis_url is not None:  # no I/O yet: the client connects on first use
            self._redis = redis.Redis.from_url(
                settings.redis_url,
                socket_timeout=settings.redis_timeout,
                socket_connect_timeout=settings.redis_timeout,
                retry=Retry(NoBackoff(), 0),  # one timeout per operation, not four
            )
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="llmesh-breakers")

    async def check(self, target: str, request_id: str = "") -> None:
        """Pass, or raise CIRCUIT_OPEN with the seconds until a call may be let through and
        the failure that opened the breaker."""
        refusal = await self._run(partial(self._admit, target, request_id), None)
        if refusal is not None:
            raise self._open_error(target, *refusal)

    @staticmethod
    def _open_error(target: str, wait: float, cause: tuple[str, str] | None) -> LlmeshError:
        metadata = {"target": target}
        if cause is None:
            why = "after repeated failures"
        else:
            why = f"after {cause[0]}: {cause[1]}"
            metadata["cause.reason"] = cause[0]
            metadata["cause.message"] = cause[1]
        return LlmeshError(
            Reason.CIRCUIT_OPEN,
            f"circuit breaker for {target} is open {why}; next trial in {wait:.1f} s",
            retry_after=wait,
            metadata=metadata,
        )

    async def is_open(self, target: str, request_id: str = "") -> bool:
        """True while `check` would refuse: open within its cool-down, or half-open with
        its one trial in flight. No side effects; used to skip targets in a route."""
        return await self._run(partial(self._refusing, target, request_id), False)

    async def record_success(self, target: str, request_id: str = "") -> None:
        """A call succeeded (a stream: it delivered its first event)."""
        await self._run(partial(self._succeeded, target, request_id), None)

    async def record_failure(
        self,
        target: str,
        reason: Reason,
        message: str = "",
        *,
        counted: bool = True,
        request_id: str = "",
    ) -> None:
        """A call failed; only reasons in `counted_reasons` count, and only when `counted`
        (False for a repeat of a failure already counted; see the module docstring)."""
        await self._run(partial(self._failed, target, reason, message, counted, request_id), None)

    async def views(self) -> list[BreakerView]:
        """Every target this instance has seen, sorted by name."""
        return await self._run(self._views, [])

    def states(self) -> dict[str, str]:
        """Every breaker this instance has seen and its state (``closed``, ``open`` or
        ``half-open``), without I/O: read in memory, or with Redis as this instance last
        saw it change (for the metrics' gauges; an open breaker's state stays open after
        its cool-down until a call tries it)."""
        if self._executor is None:
            return {name: str(e.breaker.current_state) for name, e in list(self._entries.items())}
        return {
            name: self._states.get(name, pybreaker.STATE_CLOSED) for name in list(self._entries)
        }

    async def aclose(self) -> None:
        """Finish pending Redis operations and close the connection pool."""
        if self._executor is not None and self._redis is not None and not self._closed:
            self._closed = True
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._redis.close)  # after pending ops
            self._executor.shutdown(wait=False)

    async def _run(self, op: Callable[[], _T], fallback: _T) -> _T:
        if self._executor is None:
            return op()
        health = self._health
        if health.down:
            return fallback

        def guarded() -> _T:  # ops queued before a failure was noted skip Redis too
            return fallback if health.down else op()

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, guarded)
        except redis.RedisError:
            health.failed()
            _log.warning("breaker state unavailable in Redis; letting calls through", exc_info=True)
            return fallback

    # Everything below is synchronous: inline for memory, on the breakers' thread for Redis.

    def _entry(self, target: str) -> _Entry:
        entry = self._entries.get(target)
        if entry is None:
            storage = self._new_storage(target)
            breaker = pybreaker.CircuitBreaker(
                fail_max=self._settings.fail_max,
                reset_timeout=self._settings.reset_timeout,
                success_threshold=self._settings.success_threshold,
                listeners=self._listeners,
                state_storage=storage,
                name=target,
            )
            entry = self._entries[target] = _Entry(breaker, storage)
        return entry

    def _new_storage(self, target: str) -> Storage:
        if self._redis is None:
            return MemoryStorage(self._clock)
        lease_ms = max(int(self._settings.reset_timeout * 2000), 1000)  # only garbage collection
        namespace = f"{self._settings.redis_namespace}:{target}"
        return self._redis_storage(self._redis, namespace, self._clock, lease_ms, self._health)

    def _cooldown_left(self, entry: _Entry, now: float) -> float:
        opened = entry.storage.opened_seconds()
        return 0.0 if opened is None else opened + self._settings.reset_timeout - now

    def _admit(
        self, target: str, request_id: str = ""
    ) -> tuple[float, tuple[str, str] | None] | None:
        """None to let the call through, else the seconds to wait and the cause."""
        self._request_id = request_id
        entry = self._entry(target)
        now = self._clock()
        state = entry.breaker.state.name  # re-reads shared storage; notifies listeners
        if state == pybreaker.STATE_OPEN:
            left = self._cooldown_left(entry, now)
            if left > 0:
                return left, entry.storage.cause()
            entry.breaker.half_open()
            state = pybreaker.STATE_HALF_OPEN
        if state == pybreaker.STATE_HALF_OPEN:
            held = entry.storage.acquire_trial(now, now + self._settings.reset_timeout)
            if held is not None:
                return held - now, entry.storage.cause()
        return None

    def _refusing(self, target: str, request_id: str = "") -> bool:
        self._request_id = request_id
        entry = self._entry(target)
        now = self._clock()
        state = entry.breaker.state.name
        if state == pybreaker.STATE_OPEN:
            return self._cooldown_left(entry, now) > 0
        if state == pybreaker.STATE_HALF_OPEN:
            held = entry.storage.trial_until()
            return held is not None and held > now
        return False

    def _succeeded(self, target: str, request_id: str = "") -> None:
        self._request_id = request_id
        entry = self._entry(target)
        state = entry.breaker.state
        state._handle_success()  # resets the fail counter; in half-open counts toward closing
        if state.name == pybreaker.STATE_HALF_OPEN:
            entry.storage.release_trial()

    def _failed(
        self, target: str, reason: Reason, message: str, counted: bool, request_id: str
    ) -> None:
        self._request_id = request_id
        entry = self._entry(target)
        state = entry.breaker.state
        trial = state.name == pybreaker.STATE_HALF_OPEN
        if reason in self._settings.counted_reasons and (counted or trial):
            message = message or f"call to {target} failed"
            if state.name != pybreaker.STATE_OPEN:  # late failures keep the opening cause
                entry.storage.set_cause(reason.value, message)
            error = LlmeshError(reason, message)
            # pybreaker raises out of on_failure when it trips; the trip is all we want.
            with contextlib.suppress(pybreaker.CircuitBreakerError, LlmeshError):
                state._handle_error(error, reraise=False)
        if state.name == pybreaker.STATE_HALF_OPEN:
            entry.storage.release_trial()

    def _log_transition(self, name: str, old: str, new: str) -> None:
        self._states[name] = new
        entry = self._entries.get(name)
        cause = entry.storage.cause() if entry is not None and new == pybreaker.STATE_OPEN else None
        why = f" after {cause[0]}: {cause[1]}" if cause else ""
        level = logging.WARNING if new == pybreaker.STATE_OPEN else logging.INFO
        _log.log(
            level,
            "[%s] circuit breaker for %s: %s -> %s%s",
            self._request_id or "-",
            name,
            old,
            new,
            why,
            extra={"request_id": self._request_id, "target": name, "breaker_state": new},
        )

    def _views(self) -> list[BreakerView]:
        self._request_id = ""
        now = self._clock()
        views = []
        for name in sorted(self._entries):
            entry = self._entries[name]
            state = entry.breaker.state.name
            left = None
            if state == pybreaker.STATE_OPEN:
                left = max(self._cooldown_left(entry, now), 0.0)
            views.append(BreakerView(name, state, entry.breaker.fail_counter, left))
        return views


class _TransitionLog(pybreaker.CircuitBreakerListener):  # type: ignore[misc]
    """Logs every state change of a breaker (see `Breakers._log_transition`)."""

    def __init__(self, owner: Breakers) -> None:
        self._owner = owner

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = old_state.name if old_state is not None else "none"
        self._owner._log_transition(str(cb.name), old, new_state.name)
