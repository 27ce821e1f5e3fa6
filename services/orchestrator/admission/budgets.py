"""Spending caps in USD per scope (a tenant, an API key, a session), with reservations.

A call's worst-case cost is reserved before it starts and settled when it ends, so calls in
flight cannot jointly overshoot a cap: a reservation succeeds only if, for every scope it
names, spent + held + amount stays within the daily and the monthly cap, and then it holds
the amount in all of them at once (or in none). `extend` grows a call's hold the same way
(all scopes or none) before the call spends more than it reserved, e.g. on another
attempt or a reply longer than assumed. `commit` books the actual cost (even above
the reservation: the money is spent) and frees the hold; `release` frees it after a failed
call. Days and months are UTC calendar periods of the manager's clock.

Scopes without caps are not tracked. Spend is seeded from the ledger at start-up; a seed
only ever raises what is recorded, since with Redis other replicas may have booked more.
In-process state is the default; with `redis_url` replicas share it, every operation one Lua
script. If Redis fails, reservations are refused (an unchecked cap is not a cap) and
settlements are logged and dropped: the ledger stays the record, and holds lapse after
`BudgetManager.hold_lease`.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.policy_settings import BudgetCaps
from llmesh.services.orchestrator.admission._budget_stores import (
    MemoryStore,
    RedisStore,
    Refusal,
    Store,
)
from llmesh.services.orchestrator.admission._redis import connect

__all__ = ["BudgetCaps", "BudgetManager", "Reservation"]

_log = logging.getLogger("llmesh.orchestrator.budgets")


@dataclass(eq=False)
class Reservation:
    """Money held for one call until `BudgetManager.commit` or `release` settles it."""

    id: str
    scopes: tuple[str, ...]
    """The tracked scopes the amount is held in (capped ones, without duplicates)."""
    amount: float
    """USD held in each of them."""
    _settled: bool = field(default=False, init=False, repr=False)


class BudgetManager:
    """Reserves, commits and releases spend against per-scope caps."""

    hold_lease: float = 3600.0
    """Seconds a hold lasts if never settled (a replica died mid-call); longer than a call."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        redis_url: str | None = None,
        namespace: str = "llmesh:budget",
    ) -> None:
        """`clock` is Unix time: it names the UTC day and month (with Redis too)."""
        self._clock = clock
        self._caps: dict[str, BudgetCaps] = {}
        self._store: Store = (
            RedisStore(connect(redis_url), namespace)
            if redis_url is not None
            else MemoryStore(clock)
        )

    def set_caps(self, scope: str, caps: BudgetCaps) -> None:
        """Cap a scope from now on; caps with neither period stop tracking it."""
        if caps.daily_usd is None and caps.monthly_usd is None:
            self._caps.pop(scope, None)
        else:
            self._caps[scope] = caps

    async def seed(self, scope: str, spent_today: float, spent_this_month: float) -> None:
        """Record spend known from the ledger (raising, never lowering, what is recorded)."""
        _check_usd("spent_today", spent_today)
        _check_usd("spent_this_month", spent_this_month)
        await self._store.seed(scope, *self._period(), spent_today, spent_this_month)

    async def reserve(self, scopes: Sequence[str], amount: float) -> Reservation:
        """Hold `amount` in every capped scope, or raise BUDGET_EXCEEDED and hold nothing."""
        _check_usd("amount", amount)
        tracked = tuple(dict.fromkeys(s for s in scopes if s in self._caps))
        reservation = Reservation(uuid.uuid4().hex, tracked, amount)
        if not tracked:
            return reservation
        await self._hold(reservation, amount, more=False)
        return reservation

    async def extend(self, reservation: Reservation, amount: float) -> None:
        """Hold `amount` more for a call in flight in all its scopes, or raise
        BUDGET_EXCEEDED and hold nothing more (its existing hold stays)."""
        _check_usd("amount", amount)
        if reservation._settled:
            raise LlmeshError(Reason.INTERNAL, "a settled reservation cannot be extended")
        if not reservation.scopes or amount == 0:
            reservation.amount += amount
            return
        await self._hold(reservation, amount, more=True)
        reservation.amount += amount

    async def _hold(self, reservation: Reservation, amount: float, *, more: bool) -> None:
        """Add `amount` to the reservation's hold in all its capped scopes, or raise."""
        checks = [
            (s, (self._caps[s].daily_usd, self._caps[s].monthly_usd))
            for s in reservation.scopes
            if s in self._caps
        ]
        try:
            refusal = await self._store.extend(
                checks, reservation.id, amount, *self._period(), self.hold_lease
            )
        except redis.RedisError as exc:
            raise LlmeshError(
                Reason.INTERNAL, "spending caps cannot be checked: the budget store is unavailable"
            ) from exc
        if refusal is not None:
            raise _exceeded(refusal, amount, more=more)

    async def commit(self, reservation: Reservation, actual: float) -> None:
        """Book the actual cost in the reservation's scopes and free its hold; once only."""
        _check_usd("actual", actual)
        await self._settle(reservation, actual)

    async def release(self, reservation: Reservation) -> None:
        """Free the hold of a call that failed; once only."""
        await self._settle(reservation, 0.0)

    async def spent(self, scope: str) -> tuple[float, float]:
        """USD booked for the scope today and this month (UTC)."""
        return await self._store.spent(scope, *self._period())

    async def aclose(self) -> None:
        """Close the Redis connection pool, if any."""
        await self._store.aclose()

    async def _settle(self, reservation: Reservation, actual: float) -> None:
        if reservation._settled:
            return
        reservation._settled = True  # before any await: a concurrent second call is a no-op
        if not reservation.scopes:
            return
        try:
            await self._store.settle(reservation.scopes, reservation.id, actual, *self._period())
        except redis.RedisError:
            _log.error(
                "could not book %.6f USD for %s in Redis; its hold lapses in %.0f s",
                actual,
                ", ".join(reservation.scopes),
                self.hold_lease,
                exc_info=True,
            )

    def _period(self) -> tuple[str, str]:
        """The UTC day and month of the clock's now, e.g. ``2025-01-31`` and ``2025-01``."""
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        return now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")


def _check_usd(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of USD >= 0, got {value}")


def _exceeded(refusal: Refusal, amount: float, *, more: bool = False) -> LlmeshError:
    period = "day" if refusal.period == "daily" else "month"
    description = f"{refusal.period} budget of {refusal.cap:.2f} USD (UTC calendar {period})"
    what = (
        f"this call may cost {amount:.4f} USD more"
        if more
        else f"this call may cost {amount:.4f} USD"
    )
    return LlmeshError(
        Reason.BUDGET_EXCEEDED,
        f"budget exceeded for {refusal.scope}: {what} but "
        f"{refusal.spent:.4f} USD is spent and {refusal.held:.4f} USD held by calls in flight "
        f"against the {description}",
        metadata={"quota.subject": refusal.scope, "quota.description": description},
    )
