import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pybreaker
import pytest
import redis

from llmesh.services.common.errors import ERROR_TABLE, LlmeshError, Reason
from llmesh.services.orchestrator.resilience import (
    COUNTED_BY_DEFAULT,
    Breakers,
    BreakerSettings,
    BreakerView,
)
from llmesh.services.orchestrator.resilience.breaker_storage import RedisHealth, RedisStorage

T = "openai/gpt-4o-mini"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Transitions(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.changes: list[tuple[str | None, str]] = []
        self.failures = 0
        self.successes = 0
        self.threads: set[str] = set()

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self.threads.add(threading.current_thread().name)
        self.changes.append((old_state.name if old_state else None, new_state.name))

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self.threads.add(threading.current_thread().name)
        self.failures += 1

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self.threads.add(threading.current_thread().name)
        self.successes += 1


async def open_it(breakers: Breakers, target: str = T, times: int = 3) -> None:
    for _ in range(times):
        await breakers.record_failure(target, Reason.UPSTREAM_UNAVAILABLE)


async def refused(breakers: Breakers, target: str = T) -> LlmeshError:
    with pytest.raises(LlmeshError) as info:
        await breakers.check(target)
    assert info.value.reason is Reason.CIRCUIT_OPEN
    return info.value


# -- in-process state ------------------------------------------------------------------------


def memory(clock: FakeClock, **kwargs: object) -> Breakers:
    settings = BreakerSettings(**{"fail_max": 3, "reset_timeout": 30.0, **kwargs})  # type: ignore[arg-type]
    return Breakers(settings, clock=clock)


def test_counted_reasons_are_retryable_upstream_failures_without_rate_limits() -> None:
    assert all(ERROR_TABLE[reason].retryable for reason in COUNTED_BY_DEFAULT)
    assert Reason.RATE_LIMITED not in COUNTED_BY_DEFAULT
    assert Reason.INVALID_REQUEST not in COUNTED_BY_DEFAULT
    assert BreakerSettings().counted_reasons == COUNTED_BY_DEFAULT


async def test_opens_after_fail_max_counted_failures() -> None:
    clock = FakeClock()
    breakers = memory(clock)
    await open_it(breakers, times=2)
    await breakers.check(T)
    assert not await breakers.is_open(T)
    await breakers.record_failure(T, Reason.OVERLOADED, "HTTP 529: overloaded_error")
    assert await breakers.is_open(T)
    error = await refused(breakers)
    assert error.retry_after == 30.0
    assert error.metadata == {
        "target": T,
        "cause.reason": "OVERLOADED",
        "cause.message": "HTTP 529: overloaded_error",
    }
    assert "after OVERLOADED: HTTP 529: overloaded_error" in error.message
    clock.now += 12.5
    assert (await refused(breakers)).retry_after == pytest.approx(17.5)


async def test_repeats_of_a_counted_failure_do_not_count() -> None:
    breakers = memory(FakeClock())
    await breakers.record_failure(T, Reason.UPSTREAM_UNAVAILABLE, "refused")
    for _ in range(10):  # retries of calls already counted
        await breakers.record_failure(T, Reason.UPSTREAM_UNAVAILABLE, "refused", counted=False)
    assert not await breakers.is_open(T)
    assert (await breakers.views())[0].failure_count == 1


async def test_an_uncounted_failure_still_ends_a_half_open_trial() -> None:
    clock = FakeClock()
    breakers = memory(clock)
    await open_it(breakers)
    clock.now += 30
    await breakers.check(T)  # the trial
    await breakers.record_failure(T, Reason.UPSTREAM_TIMEOUT, "slow", counted=False)
    error = await refused(breakers)
    assert error.metadata["cause.reason"] == "UPSTREAM_TIMEOUT"


async def test_transitions_are_logged_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="llmesh")
    clock = FakeClock()
    breakers = memory(clock)
    for _ in range(3):
        await breakers.record_failure(
            T, Reason.UPSTREAM_UNAVAILABLE, "cannot reach upstream", request_id="req_a"
        )
    clock.now += 30
    await breakers.check(T, "req_b")
    await breakers.record_success(T, "req_b")
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("llmesh.")]
    assert lines == [
        (
            logging.WARNING,
            f"[req_a] circuit breaker for {T}: closed -> open after UPSTREAM_UNAVAILABLE: "
            "cannot reach upstream",
        ),
        (logging.INFO, f"[req_b] circuit breaker for {T}: open -> half-open"),
        (logging.INFO, f"[req_b] circuit breaker for {T}: half-open -> closed"),
    ]


async def test_reasons_not_counted_are_ignored() -> None:
    breakers = memory(FakeClock())
    for reason in (Reason.RATE_LIMITED, Reason.INVALID_REQUEST, Reason.CANCELLED) * 5:
        await breakers.record_failure(T, reason)
    await breakers.check(T)
    assert (await breakers.views())[0].failure_count == 0


async def test_custom_counted_reasons() -> None:
    breakers = memory(FakeClock(), fail_max=1, counted_reasons=frozenset({Reason.RATE_LIMITED}))
    await breakers.record_failure(T, Reason.OVERLOADED)
    await breakers.check(T)
    await breakers.record_failure(T, Reason.RATE_LIMITED)
    await refused(breakers)


async def test_a_success_resets_the_consecutive_count() -> None:
    breakers = memory(FakeClock())
    await open_it(breakers, times=2)
    await breakers.record_success(T)
    await open_it(breakers, times=2)
    await breakers.check(T)
    assert (await breakers.views())[0].failure_count == 2


async def test_half_open_after_cool_down_then_failure_reopens() -> None:
    clock = FakeClock()
    breakers = memory(clock)
    await open_it(breakers)
    clock.now += 29.9
    assert await breakers.is_open(T)
    clock.now += 0.1
    assert not await breakers.is_open(T)
    await breakers.check(T)  # the trial
    assert (await breakers.views())[0].state == "half-open"
    # one trial at a time: others are refused until it reports
    assert await breakers.is_open(T)
    assert (await refused(breakers)).retry_after == pytest.approx(30.0)
    clock.now += 1
    await breakers.record_failure(T, Reason.UPSTREAM_TIMEOUT)
    view = (await breakers.views())[0]
    assert (view.state, view.seconds_to_half_open) == ("open", 30.0)
    assert (await refused(breakers)).retry_after == 30.0  # a fresh cool-down


async def test_half_open_success_closes() -> None:
    clock = FakeClock()
    breakers = memory(clock)
    await open_it(breakers)
    clock.now += 30
    await breakers.check(T)
    await breakers.record_success(T)
    assert await breakers.views() == [BreakerView(T, "closed", 0, None)]
    await breakers.check(T)
    await breakers.check(T)  # closed: every call passes


async def test_success_threshold_needs_that_many_trials() -> None:
    clock = FakeClock()
    breakers = memory(clock, success_threshold=2)
    await open_it(breakers)
    clock.now += 30
    await breakers.check(T)
    await breakers.record_success(T)
    assert (await breakers.views())[0].state == "half-open"
    await breakers.check(T)  # the first trial reported: the next may go
    await breakers.record_success(T)
    assert (await breakers.views())[0].state == "closed"


async def test_an_abandoned_trial_expires_after_reset_timeout() -> None:
    clock = FakeClock()
    breakers = memory(clock)
    await open_it(breakers)
    clock.now += 30
    await breakers.check(T)  # a trial that never reports
    clock.now += 29
    await refused(breakers)
    clock.now += 1
    await breakers.check(T)


async def test_uncounted_failure_of_a_trial_frees_it_without_reopening() -> None:
    clock = FakeClock()
    breakers = memory(clock)
    await open_it(breakers)
    clock.now += 30
    await breakers.check(T)
    await breakers.record_failure(T, Reason.INVALID_REQUEST)
    assert (await breakers.views())[0].state == "half-open"
    await breakers.check(T)


async def test_views_list_every_seen_target_sorted() -> None:
    clock = FakeClock()
    breakers = memory(clock)
    assert await breakers.views() == []
    await breakers.check("z/m")
    await open_it(breakers, "a/m")
    await breakers.record_failure("m/m", Reason.OVERLOADED)
    clock.now += 10
    assert await breakers.views() == [
        BreakerView("a/m", "open", 3, 20.0),
        BreakerView("m/m", "closed", 1, None),
        BreakerView("z/m", "closed", 0, None),
    ]
    clock.now += 100
    assert (await breakers.views())[0].seconds_to_half_open == 0.0


async def test_pybreaker_listeners_see_outcomes_and_transitions() -> None:
    clock = FakeClock()
    listener = Transitions()
    breakers = Breakers(
        BreakerSettings(fail_max=2, reset_timeout=5), clock=clock, listeners=[listener]
    )
    await breakers.record_success(T)
    await open_it(breakers, times=2)
    clock.now += 5
    await breakers.check(T)
    await breakers.record_success(T)
    assert listener.changes == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
    assert (listener.failures, listener.successes) == (2, 2)
    assert listener.threads == {threading.current_thread().name}  # inline on the loop
    await breakers.aclose()


@pytest.mark.parametrize(
    "kwargs", [{"fail_max": 0}, {"success_threshold": 0}, {"reset_timeout": -1.0}], ids=str
)
def test_settings_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerSettings(**kwargs)  # type: ignore[arg-type]


# -- shared state in Redis -------------------------------------------------------------------


@pytest.fixture
def namespace(redis_server: str) -> Iterator[str]:
    """A namespace of this test's own, deleted afterwards."""
    ns = f"llmesh-test:{uuid.uuid4().hex}"
    yield ns
    client = redis.Redis.from_url(redis_server)
    try:
        keys = list(client.scan_iter(match=f"{ns}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def replicas(
    redis_server: str, namespace: str
) -> AsyncIterator[tuple[Breakers, Breakers, FakeClock]]:
    """Two breakers objects (two replicas) sharing one namespace and one fake clock."""
    clock = FakeClock()
    settings = BreakerSettings(
        fail_max=3, reset_timeout=30, redis_url=redis_server, redis_namespace=namespace
    )
    a, b = Breakers(settings, clock=clock), Breakers(settings, clock=clock)
    yield a, b, clock
    await a.aclose()
    await b.aclose()


async def test_redis_replicas_share_failures_and_state(
    replicas: tuple[Breakers, Breakers, FakeClock],
) -> None:
    a, b, clock = replicas
    await a.record_failure(T, Reason.OVERLOADED)
    await b.record_failure(T, Reason.OVERLOADED)
    await a.check(T)
    await b.record_failure(T, Reason.RATE_LIMITED)  # not counted
    await a.record_failure(T, Reason.OVERLOADED)  # the third counted failure, across both
    assert await b.is_open(T)
    assert (await refused(b)).retry_after == pytest.approx(30.0)
    clock.now += 10.25  # sub-second precision: opened_at is stored as float seconds
    assert (await refused(a)).retry_after == pytest.approx(19.75)
    assert await b.views() == [BreakerView(T, "open", 3, pytest.approx(19.75))]


async def test_redis_replicas_report_the_cause_that_opened_the_breaker(
    replicas: tuple[Breakers, Breakers, FakeClock],
) -> None:
    a, b, _ = replicas
    await open_it(a, times=2)
    await a.record_failure(T, Reason.OVERLOADED, "HTTP 529: overloaded_error")  # opens it
    await b.record_failure(T, Reason.UPSTREAM_TIMEOUT, "late")  # in flight before: not the cause
    error = await refused(b)
    assert error.metadata["cause.reason"] == "OVERLOADED"
    assert error.metadata["cause.message"] == "HTTP 529: overloaded_error"
    assert "open after OVERLOADED: HTTP 529: overloaded_error;" in error.message


async def test_redis_one_trial_across_replicas(
    replicas: tuple[Breakers, Breakers, FakeClock],
) -> None:
    a, b, clock = replicas
    await open_it(a)
    clock.now += 30
    assert not await a.is_open(T)
    await b.check(T)  # b's trial
    assert await a.is_open(T)
    await refused(a)
    await b.record_success(T)
    await a.check(T)
    assert (await a.views())[0].state == "closed"


async def test_redis_trial_failure_reopens_for_everyone(
    replicas: tuple[Breakers, Breakers, FakeClock],
) -> None:
    a, b, clock = replicas
    await open_it(b)
    clock.now += 31
    await a.check(T)
    await a.record_failure(T, Reason.STREAM_INTERRUPTED)
    assert (await refused(b)).retry_after == pytest.approx(30.0)
    clock.now += 30
    await b.check(T)
    await b.record_success(T)
    assert await a.views() == [BreakerView(T, "closed", 0, None)]


async def test_redis_operations_run_on_the_breakers_thread(
    redis_server: str, namespace: str
) -> None:
    listener = Transitions()
    settings = BreakerSettings(fail_max=1, redis_url=redis_server, redis_namespace=namespace)
    breakers = Breakers(settings, listeners=[listener])
    try:
        await breakers.record_failure(T, Reason.OVERLOADED)
        await refused(breakers)
    finally:
        await breakers.aclose()
    assert listener.changes == [("closed", "open")]
    assert len(listener.threads) == 1
    assert next(iter(listener.threads)).startswith("llmesh-breakers")


class _SlowStorage(RedisStorage):
    def increment_counter(self) -> None:
        time.sleep(0.05)  # a slow Redis round trip
        super().increment_counter()


class _SlowBreakers(Breakers):
    _redis_storage = _SlowStorage


async def test_slow_redis_does_not_block_the_loop(redis_server: str, namespace: str) -> None:
    settings = BreakerSettings(redis_url=redis_server, redis_namespace=namespace)
    breakers = _SlowBreakers(settings)
    try:
        await breakers.check(T)  # create the breaker first
        ticks = 0
        slow = asyncio.create_task(breakers.record_failure(T, Reason.OVERLOADED))
        started = time.monotonic()
        while not slow.done():
            ticks += 1
            await asyncio.sleep(0.002)
        await slow
        assert time.monotonic() - started >= 0.05
        assert ticks >= 5  # the loop kept running while the storage slept
        assert (await breakers.views())[0].failure_count == 1
    finally:
        await breakers.aclose()


class _CountingBreakers(Breakers):
    entries = 0

    def _entry(self, target: str) -> Any:
        self.entries += 1
        return super()._entry(target)


async def test_unreachable_redis_lets_calls_through_and_is_skipped_for_a_while() -> None:
    settings = BreakerSettings(
        fail_max=1, redis_url="redis://127.0.0.1:1/0", redis_timeout=0.2, redis_backoff=0.05
    )
    breakers = _CountingBreakers(settings)
    try:
        await breakers.record_failure(T, Reason.OVERLOADED)
        assert breakers.entries == 1
        await breakers.check(T)
        assert not await breakers.is_open(T)
        assert await breakers.views() == []
        assert breakers.entries == 1  # Redis is down: not even tried
        await asyncio.sleep(0.06)
        await breakers.check(T)
        assert breakers.entries == 2  # the backoff passed: tried again
    finally:
        await breakers.aclose()


def test_redis_errors_pybreaker_swallows_are_noted(redis_server: str, namespace: str) -> None:
    health = RedisHealth(backoff=60)
    good = redis.Redis.from_url(redis_server)
    bad = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        storage = RedisStorage(good, f"{namespace}:{T}", FakeClock(), 1000, health)
        assert storage.state == "closed"
        assert not health.down
        storage._redis = bad
        assert storage.state == "closed"  # pybreaker's fallback, after logging the error
        assert health.down
    finally:
        good.close()
        bad.close()
