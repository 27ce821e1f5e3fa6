"""Where `BudgetManager` keeps spend and holds: in-process, or in Redis for all replicas.

Per scope a store keeps what was spent on each UTC day and month (named by the manager, from
its clock) and the holds of calls in flight. A hold is leased: a replica that dies mid-call
cannot pin a tenant's budget for the rest of the month, its holds lapse after the lease.
Reserved money is the sum of a scope's live holds, recomputed on each reservation, so it
cannot drift. Both stores check every cap of every scope before holding anything, and
`extend` grows an existing hold the same way: all scopes or none, atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis

EPSILON = 1e-9
"""USD of slack for float rounding, so amounts that add up to a cap exactly still fit."""

Caps = tuple[float | None, float | None]
"""A scope's (daily, monthly) caps in USD; None is no cap."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """The first cap a reservation would break."""

    scope: str
    period: str
    """``daily`` or ``monthly``."""
    cap: float
    spent: float
    held: float
    """Held by other calls in flight."""


class Store(Protocol):
    """Spend and holds per scope; every method is atomic across the scopes it is given."""

    async def extend(
        self,
        checks: Sequence[tuple[str, Caps]],
        hold_id: str,
        amount: float,
        day: str,
        month: str,
        lease: float,
    ) -> Refusal | None:
        """Add `amount` to the hold in every scope (renewing its lease), or refuse and add
        nothing; `Refusal.held` then includes this hold's own amount. A new reservation is
        the first extension of an empty hold."""
        ...

    async def settle(
        self, scopes: Sequence[str], hold_id: str, actual: float, day: str, month: str
    ) -> None: ...

    async def seed(
        self, scope: str, day: str, month: str, today: float, month_usd: float
    ) -> None: ...

    async def spent(self, scope: str, day: str, month: str) -> tuple[float, float]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Scope:
    day: str = ""
    day_usd: float = 0.0
    month: str = ""
    month_usd: float = 0.0
    holds: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Hold id -> (amount, lease end on the manager's clock)."""

    def spent(self, day: str, month: str) -> tuple[float, float]:
        return (
            self.day_usd if self.day == day else 0.0,
            self.month_usd if self.month == month else 0.0,
        )

    def set(self, day: str, month: str, day_usd: float, month_usd: float) -> None:
        self.day, self.day_usd, self.month, self.month_usd = day, day_usd, month, month_usd

    def held(self, now: float) -> float:
        lapsed = [hold_id for hold_id, (_, until) in self.holds.items() if until <= now]
        for hold_id in lapsed:
            del self.holds[hold_id]
        return sum(amount for amount, _ in self.holds.values())


class MemoryStore:
    """One process's spend and holds. No method awaits, so each is atomic on the loop."""

    def __init__(self, clock: Callable[[], float]) -> None:
        """`clock` times the holds' leases (the manager's clock)."""
        self._clock = clock
        self._scopes: dict[str, _Scope] = {}

    async def extend(
        self,
        checks: Sequence[tuple[str, Caps]],
        hold_id: str,
        amount: float,
        day: str,
        month: str,
        lease: float,
    ) -> Refusal | None:
        now = self._clock()
        for scope, caps in checks:
            state = self._scopes.get(scope) or _Scope()
            held = state.held(now)
            for period, cap, spent in zip(
                ("daily", "monthly"), caps, state.spent(day, month), strict=True
            ):
                if cap is not None and spent + held + amount > cap + EPSILON:
                    return Refusal(scope, period, cap, spent, held)
        for scope, _ in checks:
            holds = self._scopes.setdefault(scope, _Scope()).holds
            already = holds.get(hold_id, (0.0, 0.0))[0]
            holds[hold_id] = (already + amount, now + lease)
        return None

    async def settle(
        self, scopes: Sequence[str], hold_id: str, actual: float, day: str, month: str
    ) -> None:
        for scope in scopes:
            state = self._scopes.setdefault(scope, _Scope())
            state.holds.pop(hold_id, None)
            today, this_month = state.spent(day, month)
            state.set(day, month, today + actual, this_month + actual)

    async def seed(self, scope: str, day: str, month: str, today: float, month_usd: float) -> None:
        state = self._scopes.setdefault(scope, _Scope())
        known_day, known_month = state.spent(day, month)
        state.set(day, month, max(known_day, today), max(known_month, month_usd))

    async def spent(self, scope: str, day: str, month: str) -> tuple[float, float]:
        state = self._scopes.get(scope)
        return (0.0, 0.0) if state is None else state.spent(day, month)

    async def aclose(self) -> None:
        return None


_RESERVE_LUA = """
-- Per scope four KEYS: spent today, spent this month, holds (hash id -> USD), leases (zset
-- id -> lease end in ms, server time). ARGV: amount, hold id, lease ms, then per scope its
-- daily and monthly caps (negative = none). Adds the amount to the hold (a new hold starts
-- at 0, so reserving and extending are one script) and renews its lease. Returns {0} when
-- held everywhere, else {scope index, 1 daily | 2 monthly, spent, held} and holds nothing.
local amount, id, lease = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function num(x) return string.format('%.17g', x) end
for i = 1, #KEYS / 4 do
  local base = (i - 1) * 4
  local holds, leases = KEYS[base + 3], KEYS[base + 4]
  for _, lapsed in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
    redis.call('HDEL', holds, lapsed)
  end
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
  local held = 0
  for _, usd in ipairs(redis.call('HVALS', holds)) do held = held + tonumber(usd) end
  for period = 1, 2 do
    local cap = tonumber(ARGV[3 + (i - 1) * 2 + period])
    local spent = tonumber(redis.call('GET', KEYS[base + period]) or '0')
    if cap >= 0 and spent + held + amount > cap + 1e-9 then
      return {i, period, num(spent), num(held)}
    end
  end
end
for i = 1, #KEYS / 4 do
  local holds, leases = KEYS[(i - 1) * 4 + 3], KEYS[(i - 1) * 4 + 4]
  redis.call('HINCRBYFLOAT', holds, id, num(amount))
  redis.call('ZADD', leases, now + lease, id)
  redis.call('PEXPIRE', holds, lease)
  redis.call('PEXPIRE', leases, lease)
end
return {0}
"""

_SETTLE_LUA = """
-- The same four KEYS per scope as reserving. ARGV: hold id, actual USD, TTL of a day's and
-- of a month's spend in seconds. Drops the hold (if its lease has not lapsed) and adds the
-- actual cost to the day and the month.
local id, actual = ARGV[1], tonumber(ARGV[2])
for base = 0, #KEYS - 1, 4 do
  redis.call('HDEL', KEYS[base + 3], id)
  redis.call('ZREM', KEYS[base + 4], id)
  if actual > 0 then
    redis.call('INCRBYFLOAT', KEYS[base + 1], ARGV[2])
    redis.call('EXPIRE', KEYS[base + 1], ARGV[3])
    redis.call('INCRBYFLOAT', KEYS[base + 2], ARGV[2])
    redis.call('EXPIRE', KEYS[base + 2], ARGV[4])
  end
end
return 1
"""

_SEED_LUA = """
-- KEYS: spent today, spent this month. ARGV: their seeded values and TTLs in seconds. Raises
-- each to the seeded value, never lowers it: other replicas may have recorded more already.
for i = 1, 2 do
  local known = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tonumber(ARGV[i]) > known then redis.call('SET', KEYS[i], ARGV[i], 'EX', ARGV[i + 2]) end
end
return 1
"""

_DAY_TTL = 2 * 86400
"""Seconds a day's spend is kept: past the day's end, whatever time zone Redis runs in."""
_MONTH_TTL = 32 * 86400
"""Seconds a month's spend is kept after its last update."""


class RedisStore:
    """Spend and holds shared by replicas; each operation is one Lua script.

    Keys are ``{<namespace>}:<scope>:...``: the braces put every key in one Redis Cluster
    hash slot, so one script may touch several scopes.
    """

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._redis = client
        self._prefix = f"{{{namespace}}}"
        self._reserve = client.register_script(_RESERVE_LUA)
        self._settle = client.register_script(_SETTLE_LUA)
        self._seed = client.register_script(_SEED_LUA)

    def _keys(self, scope: str, day: str, month: str) -> list[str]:
        base = f"{self._prefix}:{scope}"
        return [f"{base}:day:{day}", f"{base}:month:{month}", f"{base}:holds", f"{base}:leases"]

    async def extend(
        self,
        checks: Sequence[tuple[str, Caps]],
        hold_id: str,
        amount: float,
        day: str,
        month: str,
        lease: float,
    ) -> Refusal | None:
        keys: list[str] = []
        args = [repr(float(amount)), hold_id, str(max(int(lease * 1000), 1))]
        for scope, caps in checks:
            keys += self._keys(scope, day, month)
            args += [repr(-1.0 if cap is None else float(cap)) for cap in caps]
        reply = await self._reserve(keys=keys, args=args)
        if int(reply[0]) == 0:
            return None
        scope, caps = checks[int(reply[0]) - 1]
        period = int(reply[1])
        cap = caps[period - 1]
        assert cap is not None
        name = "daily" if period == 1 else "monthly"
        return Refusal(scope, name, cap, float(reply[2]), float(reply[3]))

    async def settle(
        self, scopes: Sequence[str], hold_id: str, actual: float, day: str, month: str
    ) -> None:
        keys = [key for scope in scopes for key in self._keys(scope, day, month)]
        await self._settle(keys=keys, args=[hold_id, repr(float(actual)), _DAY_TTL, _MONTH_TTL])

    async def seed(self, scope: str, day: str, month: str, today: float, month_usd: float) -> None:
        keys = self._keys(scope, day, month)[:2]
        await self._seed(
            keys=keys, args=[repr(float(today)), repr(float(month_usd)), _DAY_TTL, _MONTH_TTL]
        )

    async def spent(self, scope: str, day: str, month: str) -> tuple[float, float]:
        today, this_month = await self._redis.mget(self._keys(scope, day, month)[:2])
        return float(today or 0.0), float(this_month or 0.0)

    async def aclose(self) -> None:
        await self._redis.aclose()
