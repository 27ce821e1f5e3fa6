"""Token-bucket rate limits per subject (a tenant, an API key, a target).

Each subject has up to two buckets: one of requests and one of tokens (the caller's
estimate, corrected afterwards with `RateLimiter.refund`). A bucket holds at most its
per-minute rate and refills continuously at rate/60 per second, so a full bucket allows a
burst of one minute's worth. `acquire` takes one request and the tokens from both buckets
or from neither: taking from one and then failing the other would leak capacity.

In-process buckets live on the event loop: check and take happen with no await in between,
so concurrent tasks cannot both pass the same check. With `redis_url` the buckets are shared
by every orchestrator replica: one Lua script refills, checks and takes both buckets of a
subject atomically, on the Redis server's clock (``TIME``) so replicas agree, and lets the
key expire once the buckets would be full again. When Redis fails, calls are let through
(and logged): a rate limit is pacing, not a reason to stop serving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from llmesh.services.common.errors import RETRYABLE_KEY, LlmeshError, Reason
from llmesh.services.common.policy_settings import Limit
from llmesh.services.orchestrator.admission._redis import connect

__all__ = ["Limit", "RateLimiter"]

_log = logging.getLogger("llmesh.orchestrator.ratelimit")

_EPSILON = 1e-9
"""Slack for float rounding: a bucket refilled for exactly the advertised retry-after fits."""

_SWEEP_EVERY = 1024
"""In-process buckets are swept for full ones (which equal absent ones) every so many calls."""

_TAKE_LUA = """
-- The buckets of one subject in hash KEYS[1]: r, rt = requests left and when; t, tt =
-- tokens left and when. ARGV: requests per minute, tokens per minute (0 = no limit), a
-- token count, and 'take' or 'refund'. A missing field is a full bucket.
local rpm, tpm, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'r', 'rt', 't', 'tt')
local function level(left, at, rate)
  if rate <= 0 then return 0 end
  if not left then return rate end
  return math.min(rate, tonumber(left) + math.max(now - tonumber(at), 0) * rate / 60)
end
local function num(x) return string.format('%.17g', x) end
local r, k = level(s[1], s[2], rpm), level(s[3], s[4], tpm)
if ARGV[4] == 'take' then
  local wr, wk = 0, 0
  if rpm > 0 and r < 1 - 1e-9 then wr = (1 - r) * 60 / rpm end
  if tpm > 0 and k < n - 1e-9 then wk = (n - k) * 60 / tpm end
  if wr > 0 or wk > 0 then return {0, num(wr), num(wk)} end
  r, k = r - 1, k - n
else
  k = math.min(tpm, k + n)
end
local full_in = 0
if rpm > 0 then
  redis.call('HSET', KEYS[1], 'r', num(r), 'rt', num(now))
  full_in = math.max(full_in, (rpm - r) * 60 / rpm)
end
if tpm > 0 then
  redis.call('HSET', KEYS[1], 't', num(k), 'tt', num(now))
  full_in = math.max(full_in, (tpm - k) * 60 / tpm)
end
if full_in * 1000 < 1 then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], math.ceil(full_in * 1000))
end
return {1}
"""


@dataclass(slots=True)
class _Bucket:
    left: float
    at: float
    rate: float

    def level(self, now: float, rate: float) -> float:
        """What the bucket holds at `now`, refilled at `rate` (the limit may have changed)."""
        return min(rate, self.left + max(now - self.at, 0.0) * rate / 60)


class RateLimiter:
    """Request and token buckets per subject, in-process or shared through Redis."""

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        namespace: str = "llmesh:rl",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` drives in-process buckets; Redis buckets use the server's clock.
        Keys in Redis are ``<namespace>:<subject>``."""
        self._clock = clock
        self._namespace = namespace
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._calls = 0
        self._redis = connect(redis_url) if redis_url is not None else None
        self._script = self._redis.register_script(_TAKE_LUA) if self._redis else None

    async def acquire(self, subject: str, limit: Limit, tokens: int) -> None:
        """Take one request and `tokens` from the subject's buckets, or raise
        RATE_LIMIT_EXCEEDED (with the seconds until both would fit) and take nothing."""
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
        if tpm is not None and tokens > tpm:
            raise LlmeshError(
                Reason.RATE_LIMIT_EXCEEDED,
                f"rate limit for {subject}: a request of {tokens} tokens can never fit within "
                f"{_describe(tpm, 'tokens')}; send a smaller request",
                metadata={
                    **_quota(
                        subject, f"request of {tokens} tokens over {_describe(tpm, 'tokens')}"
                    ),
                    RETRYABLE_KEY: "false",  # waiting cannot help: no retry hint, no retry
                },
            )
        if rpm is None and tpm is None:
            return
        if self._script is None:
            waits = self._take(subject, rpm, tpm, tokens)
        else:
            waits = await self._run("take", subject, rpm, tpm, tokens)
        if waits is None:
            return
        exhausted = [
            _describe(rate, unit)
            for rate, unit, wait in ((rpm, "requests", waits[0]), (tpm, "tokens", waits[1]))
            if rate is not None and wait > 0
        ]
        retry_after = max(waits)
        described = " and ".join(exhausted)
        raise LlmeshError(
            Reason.RATE_LIMIT_EXCEEDED,
            f"rate limit for {subject} exceeded ({described}); retry in {retry_after:.2f} s",
            retry_after=retry_after,
            metadata=_quota(subject, described),
        )

    async def refund(self, subject: str, limit: Limit, tokens: int) -> None:
        """Give back tokens the estimate took beyond actual use (never above capacity)."""
        tpm = limit.tokens_per_minute
        if tpm is None or tokens <= 0:
            return
        if self._script is None:
            now = self._clock()
            bucket = self._buckets.get((subject, "tokens"))
            if bucket is not None:  # no bucket is a full one
                self._buckets[(subject, "tokens")] = _Bucket(
                    min(tpm, bucket.level(now, tpm) + tokens), now, tpm
                )
        else:
            await self._run("refund", subject, limit.requests_per_minute, tpm, tokens)

    async def aclose(self) -> None:
        """Close the Redis connection pool, if any."""
        if self._redis is not None:
            await self._redis.aclose()

    def _take(
        self, subject: str, rpm: float | None, tpm: float | None, tokens: int
    ) -> tuple[float, float] | None:
        """In-process check-and-take, with no await: atomic on the event loop. Returns
        None when taken, else the seconds each bucket needs before the call fits."""
        now = self._clock()
        self._calls += 1
        if self._calls % _SWEEP_EVERY == 0:
            self._sweep(now)
        waits = [0.0, 0.0]
        taken: list[tuple[tuple[str, str], float, float]] = []
        for i, (kind, rate, need) in enumerate((("requests", rpm, 1), ("tokens", tpm, tokens))):
            if rate is None:
                continue
            bucket = self._buckets.get((subject, kind))
            level = rate if bucket is None else bucket.level(now, rate)
            if level < need - _EPSILON:
                waits[i] = (need - level) * 60 / rate
            taken.append(((subject, kind), level - need, rate))
        if waits[0] > 0 or waits[1] > 0:
            return waits[0], waits[1]
        for key, left, rate in taken:
            self._buckets[key] = _Bucket(left, now, rate)
        return None

    def _sweep(self, now: float) -> None:
        full = [key for key, b in self._buckets.items() if b.level(now, b.rate) >= b.rate]
        for key in full:
            del self._buckets[key]

    async def _run(
        self, op: str, subject: str, rpm: float | None, tpm: float | None, tokens: int
    ) -> tuple[float, float] | None:
        assert self._script is not None
        args = [repr(float(rpm or 0)), repr(float(tpm or 0)), str(tokens), op]
        try:
            reply = await self._script(keys=[f"{self._namespace}:{subject}"], args=args)
        except redis.RedisError:
            _log.warning(
                "rate limits of %s unavailable in Redis (%s); letting the call through",
                subject,
                op,
                exc_info=True,
            )
            return None
        if int(reply[0]) == 1:
            return None
        return float(reply[1]), float(reply[2])


def _describe(rate: float, unit: str) -> str:
    """E.g. ``10 requests per minute``, ``1 request per minute``."""
    return f"{rate:g} {unit.removesuffix('s') if rate == 1 else unit} per minute"


def _quota(subject: str, description: str) -> dict[str, str]:
    """The violation, under the keys `QuotaFailure` is rendered from."""
    return {"quota.subject": subject, "quota.description": description}
