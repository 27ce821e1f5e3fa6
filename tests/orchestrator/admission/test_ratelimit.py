import asyncio
import math
from collections.abc import AsyncIterator

import pytest
import redis

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.orchestrator.admission import Limit, RateLimiter
from tests.orchestrator.admission.fakes import FakeClock

S = "tenant:acme"


@pytest.fixture
async def clock_and_limiter() -> AsyncIterator[tuple[FakeClock, RateLimiter]]:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    yield clock, limiter
    await limiter.aclose()


async def refused(limiter: RateLimiter, limit: Limit, tokens: int, subject: str = S) -> LlmeshError:
    with pytest.raises(LlmeshError) as info:
        await limiter.acquire(subject, limit, tokens)
    assert info.value.reason is Reason.RATE_LIMIT_EXCEEDED
    return info.value


# -- in-process, on a fake clock --------------------------------------------------------------


async def test_requests_per_minute_allow_a_burst_then_refuse_with_retry_after(
    clock_and_limiter: tuple[FakeClock, RateLimiter],
) -> None:
    _, limiter = clock_and_limiter
    limit = Limit(requests_per_minute=3)
    for _ in range(3):
        await limiter.acquire(S, limit, 0)
    err = await refused(limiter, limit, 0)
    assert err.retry_after == pytest.approx(20.0)  # one request refills in 60 / 3 s
    assert err.metadata == {
        "quota.subject": S,
        "quota.description": "3 requests per minute",
    }
    assert S in err.message and "3 requests per minute" in err.message


async def test_tokens_per_minute_refuse_with_time_until_enough_tokens(
    clock_and_limiter: tuple[FakeClock, RateLimiter],
) -> None:
    _, limiter = clock_and_limiter
    limit = Limit(tokens_per_minute=1000)
    await limiter.acquire(S, limit, 600)
    err = await refused(limiter, limit, 500)
    assert err.retry_after == pytest.approx(6.0)  # 100 tokens short at 1000/60 per second
    assert err.metadata["quota.description"] == "1000 tokens per minute"


async def test_buckets_refill_continuously_and_retry_after_is_enough(
    clock_and_limiter: tuple[FakeClock, RateLimiter],
) -> None:
    clock, limiter = clock_and_limiter
    limit = Limit(requests_per_minute=60, tokens_per_minute=600)
    for _ in range(60):
        await limiter.acquire(S, limit, 1)
    clock.advance(0.5)
    err = await refused(limiter, limit, 1)
    assert err.retry_after == pytest.approx(0.5)
    clock.advance(err.retry_after or 0)
    await limiter.acquire(S, limit, 1)
    clock.advance(3600)  # never above capacity: still a burst of 60, not more
    for _ in range(60):
        await limiter.acquire(S, limit, 1)
    await refused(limiter, limit, 1)


async def test_a_refused_token_request_takes_no_request(
    clock_and_limiter: tuple[FakeClock, RateLimiter],
) -> None:
    _, limiter = clock_and_limiter
    limit = Limit(requests_per_minute=2, tokens_per_minute=100)
    await limiter.acquire(S, limit, 100)
    err = await refused(limiter, limit, 50)
    assert err.metadata["quota.description"] == "100 tokens per minute"
    await limiter.acquire(S, limit, 0)  # the refused call left the second request in place
    err = await refused(limiter, limit, 0)
    assert err.metadata["quota.description"] == "2 requests per minute"


async def test_a_refused_request_takes_no_tokens(
    clock_and_limiter: tuple[FakeClock, RateLimiter],
) -> None:
    clock, limiter = clock_and_limiter
    limit = Limit(requests_per_minute=2, tokens_per_minute=100)
    await limiter.acquire(S, limit, 0)
    await limiter.acquire(S, limit, 0)
    err = await refused(limiter, limit, 100)
    assert err.retry_after == pytest.approx(30.0)
    clock.advance(30)  # had the tokens been taken, only 50 would be back by now
    await limiter.acquire(S, limit, 100)


async def test_both_buckets_short_wait_for_the_slower(
    clock_and_limiter: tuple[FakeClock, RateLimiter],
) -> None:
    _, limiter = clock_and_limiter
    limit = Limit(requests_per_minute=1, tokens_per_minute=60)
    await limiter.acquire(S, limit, 30)
    err = await refused(limiter, limit, 60)
    assert err.retry_after == pytest.approx(60.0)  # requests: 60 s; tokens: 30 s
    assert err.metadata["quota.description"] == "1 request per minute and 60 tokens per minute"


async def test_more_tokens_than_the_bucket_holds_can_never_fit(
    clock_and_limiter: tuple[FakeClock, RateLimiter],
) -> None:
    _, limiter = clock_and_limiter
    limit = Limit(requests_per_minute=10, tokens_per_minute=1000)
    err = await refused(limiter, limit, 1001)
    assert err.retry_after is None
    assert not err.retryable  # answered with x-should-retry: false
    assert "can never fit" in err.message and "1000 tokens per minute" in err.message
    assert err.metadata["quota.subject"] == S
    await limiter.acquire(S, limit, 1000)  # nothing was taken by the refusal


async def test_refund_gives_back_tokens_but_never_above_capacity(
    clock_and_limiter: tuple[FakeClock, RateLimiter],
) -> None:
    _, limiter = clock_and_limiter
    limit = Limit(tokens_per_minute=100)
    await limiter.acquire(S, limit, 80)
    await limiter.refund(S, limit, 50)
    await limiter.acquire(S, limit, 70)
    await refused(limiter, limit, 1)
    await limiter.refund(S, limit, 1000)
    await limiter.acquire(S, limit, 100)
    await refused(limiter, limit, 1)
    await limiter.refund("tenant:unseen", limit, 10)  # a full bucket stays full
    await limiter.acquire("tenant:unseen", limit, 100)


async def test_subjects_have_their_own_buckets(
    clock_and_limiter: tuple[FakeClock, RateLimiter],
) -> None:
    _, limiter = clock_and_limiter
    limit = Limit(requests_per_minute=1)
    await limiter.acquire("key:a", limit, 0)
    await limiter.acquire("key:b", limit, 0)
    await refused(limiter, limit, 0, "key:a")


async def test_no_limit_always_admits(clock_and_limiter: tuple[FakeClock, RateLimiter]) -> None:
    _, limiter = clock_and_limiter
    for _ in range(1000):
        await limiter.acquire(S, Limit(), 10**9)


async def test_concurrent_acquires_admit_exactly_the_limit(
    clock_and_limiter: tuple[FakeClock, RateLimiter],
) -> None:
    _, limiter = clock_and_limiter
    limit = Limit(requests_per_minute=10)

    async def one() -> bool:
        await asyncio.sleep(0)
        try:
            await limiter.acquire(S, limit, 0)
        except LlmeshError:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert sum(results) == 10


async def test_full_buckets_are_swept(clock_and_limiter: tuple[FakeClock, RateLimiter]) -> None:
    clock, limiter = clock_and_limiter
    limit = Limit(requests_per_minute=10)
    for i in range(1500):
        await limiter.acquire(f"key:{i}", limit, 0)
    clock.advance(60)
    for _ in range(1024):
        await limiter.acquire("key:busy", Limit(requests_per_minute=10_000), 0)
    assert len(limiter._buckets) <= 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"requests_per_minute": 0.5},
        {"requests_per_minute": math.inf},
        {"tokens_per_minute": 0},
        {"tokens_per_minute": math.nan},
    ],
)
def test_limits_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Limit(**kwargs)


async def test_negative_tokens_are_a_caller_bug(
    clock_and_limiter: tuple[FakeClock, RateLimiter],
) -> None:
    _, limiter = clock_and_limiter
    with pytest.raises(ValueError):
        await limiter.acquire(S, Limit(tokens_per_minute=10), -1)


# -- shared through the real Redis ------------------------------------------------------------


@pytest.fixture
async def replicas(
    redis_server: str, namespace: str
) -> AsyncIterator[tuple[RateLimiter, RateLimiter]]:
    """Two limiters (two orchestrator replicas) sharing one namespace."""
    a = RateLimiter(redis_url=redis_server, namespace=namespace)
    b = RateLimiter(redis_url=redis_server, namespace=namespace)
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_redis_replicas_share_a_limit(replicas: tuple[RateLimiter, RateLimiter]) -> None:
    a, b = replicas
    limit = Limit(requests_per_minute=3)
    await a.acquire(S, limit, 0)
    await b.acquire(S, limit, 0)
    await a.acquire(S, limit, 0)
    err = await refused(b, limit, 0)
    assert err.retry_after is not None and 19 < err.retry_after <= 20
    assert err.metadata == {"quota.subject": S, "quota.description": "3 requests per minute"}
    await refused(a, limit, 0)
    await b.acquire("tenant:other", limit, 0)


async def test_redis_50_concurrent_acquires_against_10_rpm_admit_exactly_10(
    replicas: tuple[RateLimiter, RateLimiter],
) -> None:
    a, b = replicas
    limit = Limit(requests_per_minute=10)

    async def one(limiter: RateLimiter) -> bool:
        try:
            await limiter.acquire(S, limit, 0)
        except LlmeshError:
            return False
        return True

    results = await asyncio.gather(*(one(a if i % 2 else b) for i in range(50)))
    assert sum(results) == 10


async def test_redis_check_and_take_is_all_or_nothing(
    replicas: tuple[RateLimiter, RateLimiter],
) -> None:
    a, b = replicas
    limit = Limit(requests_per_minute=2, tokens_per_minute=100)
    await a.acquire(S, limit, 100)
    err = await refused(b, limit, 50)
    assert err.retry_after is not None and 29 < err.retry_after <= 30
    assert err.metadata["quota.description"] == "100 tokens per minute"
    await b.acquire(S, limit, 0)  # the refused call took no request
    err = await refused(a, limit, 0)
    assert err.metadata["quota.description"] == "2 requests per minute"


async def test_redis_refund_never_above_capacity_and_full_keys_go(
    replicas: tuple[RateLimiter, RateLimiter], redis_server: str, namespace: str
) -> None:
    a, b = replicas
    limit = Limit(tokens_per_minute=100)
    await a.acquire(S, limit, 80)
    client = redis.Redis.from_url(redis_server)
    try:
        assert 0 < client.pttl(f"{namespace}:{S}") <= 60_000  # expires once full again
        await b.refund(S, limit, 50)
        await a.acquire(S, limit, 70)
        await refused(b, limit, 5)
        await b.refund(S, limit, 1000)
        assert client.exists(f"{namespace}:{S}") == 0  # full again: nothing to keep
        await a.acquire(S, limit, 100)
        await refused(b, limit, 5)
    finally:
        client.close()


async def test_redis_too_many_tokens_never_fit(replicas: tuple[RateLimiter, RateLimiter]) -> None:
    a, _ = replicas
    err = await refused(a, Limit(tokens_per_minute=10), 11)
    assert err.retry_after is None


async def test_unreachable_redis_lets_calls_through() -> None:
    limiter = RateLimiter(redis_url="redis://127.0.0.1:1/0")
    try:
        for _ in range(3):
            await limiter.acquire(S, Limit(requests_per_minute=1), 0)
        await limiter.refund(S, Limit(tokens_per_minute=1), 1)
    finally:
        await limiter.aclose()
