import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.orchestrator.resilience import QueueSettings, TargetLimiter

T = "openai/gpt-4o-mini"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def holding(limiter: TargetLimiter, target: str = T) -> AsyncIterator[asyncio.Event]:
    """Hold one slot in a background task until the yielded event is set."""
    done = asyncio.Event()
    entered = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot(target):
            entered.set()
            await done.wait()

    task = asyncio.create_task(hold())
    await entered.wait()
    try:
        yield done
    finally:
        done.set()
        await task


async def test_third_call_waits_for_one_of_two_slots() -> None:
    limiter = TargetLimiter(QueueSettings(max_concurrency=2))
    async with holding(limiter) as first, holding(limiter):
        assert limiter.in_flight(T) == 2
        third = asyncio.create_task(_enter_and_exit(limiter))
        await settle()
        assert not third.done()
        assert limiter.queued(T) == 1
        first.set()
        await asyncio.wait_for(third, 1)
        assert limiter.queued(T) == 0
    assert limiter.in_flight(T) == 0


async def _enter_and_exit(limiter: TargetLimiter, target: str = T) -> None:
    async with limiter.slot(target):
        pass


async def test_targets_have_their_own_limits() -> None:
    limiter = TargetLimiter(QueueSettings(max_concurrency=1))
    async with holding(limiter, "a/m"):
        await asyncio.wait_for(_enter_and_exit(limiter, "b/m"), 1)
        assert limiter.in_flight("a/m") == 1


async def test_full_queue_fails_at_once_with_retry_after() -> None:
    limiter = TargetLimiter(QueueSettings(max_concurrency=1, max_queue=1, queue_timeout=30))
    async with holding(limiter):
        waiting = asyncio.create_task(_enter_and_exit(limiter))
        await settle()
        with pytest.raises(LlmeshError) as info:  # at once: waiting would take 30 s
            await asyncio.wait_for(_enter_and_exit(limiter), 5)
        assert info.value.reason is Reason.QUEUE_FULL
        assert info.value.retry_after == 30  # no hold times yet: the queue timeout bounds it
        assert "1 waiting" in info.value.message
        assert limiter.queued(T) == 1
    await waiting


async def test_retry_after_estimates_from_hold_times() -> None:
    clock = FakeClock()
    limiter = TargetLimiter(QueueSettings(max_concurrency=2, max_queue=1), clock=clock)
    async with limiter.slot(T):
        clock.now += 2.0  # a slot held 2 s
    async with holding(limiter), holding(limiter):
        waiting = asyncio.create_task(_enter_and_exit(limiter))
        await settle()
        with pytest.raises(LlmeshError) as info:
            await _enter_and_exit(limiter)
    await waiting
    # one waiter ahead plus this call, over 2 slots, 2 s each
    assert info.value.retry_after == pytest.approx(2.0)
    assert limiter.retry_after(T) <= 30


async def test_zero_queue_sheds_immediately() -> None:
    limiter = TargetLimiter(QueueSettings(max_concurrency=1, max_queue=0))
    async with holding(limiter):
        with pytest.raises(LlmeshError) as info:
            await _enter_and_exit(limiter)
    assert info.value.reason is Reason.QUEUE_FULL


async def test_queue_timeout_is_queue_full_and_leaves_nothing_behind() -> None:
    limiter = TargetLimiter(QueueSettings(max_concurrency=1, queue_timeout=0.02))
    async with holding(limiter):
        with pytest.raises(LlmeshError) as info:
            await _enter_and_exit(limiter)
        assert info.value.reason is Reason.QUEUE_FULL
        assert "queue timeout" in info.value.message
        assert info.value.retry_after is not None
        assert limiter.queued(T) == 0
        assert limiter.in_flight(T) == 1
    assert limiter.in_flight(T) == 0


async def test_cancel_while_queued_frees_the_entry() -> None:
    limiter = TargetLimiter(QueueSettings(max_concurrency=1))
    async with holding(limiter):
        waiting = asyncio.create_task(_enter_and_exit(limiter))
        await settle()
        assert limiter.queued(T) == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert limiter.queued(T) == 0
    assert limiter.in_flight(T) == 0
    await asyncio.wait_for(_enter_and_exit(limiter), 1)  # no leaked slot


async def test_cancel_racing_a_granted_slot_passes_it_on() -> None:
    limiter = TargetLimiter(QueueSettings(max_concurrency=1))
    order: list[str] = []

    async def use(name: str) -> None:
        async with limiter.slot(T):
            order.append(name)

    async with holding(limiter) as release:
        first = asyncio.create_task(use("first"))
        second = asyncio.create_task(use("second"))
        await settle()
        release.set()
        await asyncio.sleep(0)  # the holder leaves: the slot goes to `first`...
        first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    assert order == ["second"]
    assert limiter.in_flight(T) == 0
    assert limiter.queued(T) == 0


async def test_waiters_are_served_in_arrival_order_without_barging() -> None:
    limiter = TargetLimiter(QueueSettings(max_concurrency=1))
    order: list[int] = []

    async def use(i: int) -> None:
        async with limiter.slot(T):
            order.append(i)
            await asyncio.sleep(0)

    async with holding(limiter) as release:
        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(use(i)))
            await asyncio.sleep(0)
        assert limiter.queued(T) == 5
        release.set()
        await asyncio.sleep(0)
        # a newcomer arriving while the slot is being handed over queues behind the rest
        tasks.append(asyncio.create_task(use(99)))
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4, 99]


async def test_an_error_in_the_block_releases_the_slot() -> None:
    limiter = TargetLimiter(QueueSettings(max_concurrency=1))
    with pytest.raises(RuntimeError):
        async with limiter.slot(T):
            raise RuntimeError("boom")
    assert limiter.in_flight(T) == 0
    await asyncio.wait_for(_enter_and_exit(limiter), 1)


async def test_unlimited_mode_is_a_shared_no_op() -> None:
    limiter = TargetLimiter(QueueSettings(max_concurrency=0))
    assert limiter.slot("a/m") is limiter.slot("b/m")  # nothing allocated per call
    entered = 0

    async def use() -> None:
        nonlocal entered
        async with limiter.slot(T):
            entered += 1
            await asyncio.sleep(0)

    await asyncio.gather(*(use() for _ in range(1000)))
    assert entered == 1000
    assert limiter._lanes == {}  # no lock, semaphore or counter was touched
    assert limiter.in_flight(T) == 0
    assert limiter.queued(T) == 0


@pytest.mark.parametrize(
    "kwargs", [{"max_concurrency": -1}, {"max_queue": -1}, {"queue_timeout": -1.0}], ids=str
)
def test_settings_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        QueueSettings(**kwargs)  # type: ignore[arg-type]
