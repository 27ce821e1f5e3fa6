"""Where breaker state lives: pybreaker's storages, with `opened_at` on an injected clock.

pybreaker stamps `opened_at` with the wall clock (whole seconds in Redis) and compares it
with ``datetime.now()``. These storages ignore the stamp pybreaker passes and record the
injected clock's time instead, as float seconds, so cool-downs can be driven by a fake clock
and are sub-second precise; `Breakers` does the cool-down arithmetic on the same clock. They
also hold the half-open trial lease (an expiry time on that clock), in Redis shared by all
replicas and updated atomically by a Lua script, and the last counted failure (reason and
message), which CIRCUIT_OPEN errors report as the cause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pybreaker
import redis

__all__ = ["MemoryStorage", "RedisHealth", "RedisStorage", "Storage"]


class RedisHealth:
    """When Redis last failed, so that while it is down breakers skip it (letting calls
    through) instead of queueing every operation behind a timeout."""

    def __init__(self, backoff: float) -> None:
        self._backoff = backoff
        self._down_until = 0.0

    def failed(self) -> None:
        """Note a failure: Redis is skipped for the next `backoff` seconds."""
        self._down_until = time.monotonic() + self._backoff

    @property
    def down(self) -> bool:
        """True within `backoff` seconds of the last failure."""
        return time.monotonic() < self._down_until


class _NotingLogger(logging.LoggerAdapter[logging.Logger]):
    """pybreaker logs and swallows most Redis errors; this notes them in a `RedisHealth`."""

    def __init__(self, logger: logging.Logger, health: RedisHealth) -> None:
        super().__init__(logger, {})
        self._health = health

    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._health.failed()
        super().exception(msg, *args, **kwargs)


class MemoryStorage(pybreaker.CircuitMemoryStorage):
    """pybreaker's in-process storage, stamped with our clock, plus the trial lease."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._clock = clock
        self._opened_s: float | None = None
        self._trial_until: float | None = None
        self._cause: tuple[str, str] | None = None

    @property
    def opened_at(self) -> datetime | None:
        return None if self._opened_s is None else datetime.fromtimestamp(self._opened_s, UTC)

    @opened_at.setter
    def opened_at(self, wall: datetime) -> None:
        self._opened_s = self._clock()  # pybreaker passes the wall clock; use ours

    def opened_seconds(self) -> float | None:
        """When the breaker last opened, on the injected clock."""
        return self._opened_s

    def trial_until(self) -> float | None:
        """When the current trial's lease expires (may be in the past)."""
        return self._trial_until

    def acquire_trial(self, now: float, until: float) -> float | None:
        """Take the lease until `until` unless one is held; returns the holder's expiry."""
        if self._trial_until is not None and self._trial_until > now:
            return self._trial_until
        self._trial_until = until
        return None

    def release_trial(self) -> None:
        """Let the next trial through."""
        self._trial_until = None

    def set_cause(self, reason: str, message: str) -> None:
        """Remember the last counted failure."""
        self._cause = (reason, message)

    def cause(self) -> tuple[str, str] | None:
        """The last counted failure (reason, message), if any."""
        return self._cause


_SET_IF_GREATER = """
local cur = redis.call('GET', KEYS[1])
if not cur or tonumber(ARGV[1]) > tonumber(cur) then redis.call('SET', KEYS[1], ARGV[1]) end
"""
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) > tonumber(ARGV[1]) then return cur end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false
"""


class RedisStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage with `opened_at` and the trial lease on our clock.

    Both live in keys of their own (float seconds) so plain pybreaker storages sharing the
    namespace never misread them. Blocking: call only from the breakers' thread.
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        clock: Callable[[], float],
        lease_ms: int,
        health: RedisHealth,
    ) -> None:
        self.logger = _NotingLogger(type(self).logger, health)  # type: ignore[assignment]
        super().__init__(pybreaker.STATE_CLOSED, client, namespace=namespace)
        self._clock = clock
        self._lease_ms = lease_ms
        self._opened_key = self._namespace("opened_at_s")
        self._trial_key = self._namespace("trial_until")
        self._cause_key = self._namespace("cause")
        self._set_if_greater = client.register_script(_SET_IF_GREATER)
        self._acquire = client.register_script(_ACQUIRE)

    @property
    def opened_at(self) -> datetime | None:
        opened = self.opened_seconds()
        return None if opened is None else datetime.fromtimestamp(opened, UTC)

    @opened_at.setter
    def opened_at(self, wall: datetime) -> None:
        try:  # like pybreaker: never move it back (a slower replica reopening late)
            self._set_if_greater(keys=[self._opened_key], args=[repr(self._clock())])
        except redis.RedisError:
            self.logger.exception("RedisError")

    def opened_seconds(self) -> float | None:
        value = self._redis.get(self._opened_key)
        return None if value is None else float(value)

    def trial_until(self) -> float | None:
        value = self._redis.get(self._trial_key)
        return None if value is None else float(value)

    def acquire_trial(self, now: float, until: float) -> float | None:
        held = self._acquire(keys=[self._trial_key], args=[repr(now), repr(until), self._lease_ms])
        return None if held is None else float(held)

    def release_trial(self) -> None:
        self._redis.delete(self._trial_key)

    def set_cause(self, reason: str, message: str) -> None:
        self._redis.set(self._cause_key, f"{reason}\n{message}", px=self._lease_ms)

    def cause(self) -> tuple[str, str] | None:
        value = self._redis.get(self._cause_key)
        if value is None:
            return None
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        reason, _, message = text.partition("\n")
        return reason, message


Storage = MemoryStorage | RedisStorage
