"""The tiered queue of `TargetLimiter`: higher tiers first, lower tiers shed first."""

from __future__ import annotations

import asyncio
import random

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.priority import Priority
from llmesh.services.orchestrator.resilience import QueueSettings, TargetLimiter

T = "openai/gpt-4o-mini"
P = Priority


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Bench:
    """One target with `max_concurrency=1` whose single slot a test holds and releases."""

    def __init__(self, max_queue: int = 100) -> None:
        self.limiter = TargetLimiter(QueueSettings(max_concurrency=1, max_queue=max_queue))
        self.order: list[str] = []
        self.release = asyncio.Event()
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def hold(self) -> None:
        entered = asyncio.Event()

        async def run() -> None:
            async with self.limiter.slot(T, P.CRITICAL):
                entered.set()
                await self.release.wait()

        self.tasks["holder"] = asyncio.create_task(run())
        await entered.wait()

    async def arrive(self, name: str, tier: Priority) -> asyncio.Task[None]:
        async def use() -> None:
            async with self.limiter.slot(T, tier):
                self.order.append(name)
                await asyncio.sleep(0)

        task = self.tasks[name] = asyncio.create_task(use())
        await settle()
        return task

    async def error_of(self, name: str) -> LlmeshError:
        with pytest.raises(LlmeshError) as info:
            await self.tasks[name]
        return info.value


async def test_higher_tiers_first_and_arrival_order_within_a_tier() -> None:
    bench = Bench()
    await bench.hold()
    for name, tier in [
        ("low1", P.LOW),
        ("batch", P.BATCH),
        ("normal1", P.NORMAL),
        ("critical", P.CRITICAL),
        ("high", P.HIGH),
        ("normal2", P.NORMAL),
        ("low2", P.LOW),
    ]:
        await bench.arrive(name, tier)
    assert bench.limiter.queued(T) == 7
    assert bench.limiter.queued_by_tier(T)[P.NORMAL] == 2
    bench.release.set()
    await asyncio.gather(*bench.tasks.values())
    assert bench.order == ["critical", "high", "normal1", "normal2", "low1", "low2", "batch"]
    assert bench.limiter.in_flight(T) == 0 and bench.limiter.queued(T) == 0


async def test_a_handed_over_slot_is_not_taken_by_a_newcomer_of_a_higher_tier() -> None:
    bench = Bench()
    await bench.hold()
    await bench.arrive("low", P.LOW)
    bench.release.set()
    await asyncio.sleep(0)  # the holder leaves and hands its slot to `low`...
    assert bench.tasks["holder"].done()
    await bench.arrive("critical", P.CRITICAL)  # ...before `low` runs: no barging
    await asyncio.gather(*bench.tasks.values())
    assert bench.order == ["low", "critical"]
    assert bench.limiter.in_flight(T) == 0


async def test_a_full_queue_sheds_the_newest_of_the_lowest_tier_below_the_newcomer() -> None:
    bench = Bench(max_queue=3)
    await bench.hold()
    await bench.arrive("low1", P.LOW)
    await bench.arrive("low2", P.LOW)
    await bench.arrive("high", P.HIGH)
    await bench.arrive("normal", P.NORMAL)  # full: low2, the newest low, makes room
    shed = await bench.error_of("low2")
    assert shed.reason is Reason.QUEUE_FULL and shed.retry_after is not None
    assert shed.metadata == {"target": T, "priority": "low", "shed": "true"}
    assert "for a normal call" in shed.message
    await bench.arrive("critical", P.CRITICAL)  # then low1
    assert (await bench.error_of("low1")).metadata["shed"] == "true"
    await bench.arrive("low3", P.LOW)  # nothing below low waits: low3 itself is refused
    refused = await bench.error_of("low3")
    assert refused.reason is Reason.QUEUE_FULL and "shed" not in refused.metadata
    assert refused.metadata["priority"] == "low"
    await bench.arrive("high2", P.HIGH)  # the lowest tier below high is normal
    assert (await bench.error_of("normal")).metadata["priority"] == "normal"
    assert bench.limiter.queued_by_tier(T) == {
        P.BATCH: 0,
        P.LOW: 0,
        P.NORMAL: 0,
        P.HIGH: 2,
        P.CRITICAL: 1,
    }
    bench.release.set()
    for name in ("holder", "high", "critical", "high2"):
        await bench.tasks[name]
    assert bench.order == ["critical", "high", "high2"]
    assert bench.limiter.in_flight(T) == 0 and bench.limiter.queued(T) == 0


async def test_critical_calls_are_never_shed() -> None:
    bench = Bench(max_queue=2)
    await bench.hold()
    await bench.arrive("critical1", P.CRITICAL)
    await bench.arrive("critical2", P.CRITICAL)
    await bench.arrive("critical3", P.CRITICAL)  # full of criticals: the newcomer is refused
    assert "shed" not in (await bench.error_of("critical3")).metadata
    assert bench.limiter.queued_by_tier(T)[P.CRITICAL] == 2
    bench.release.set()
    await bench.tasks["critical1"]
    await bench.tasks["critical2"]
    assert bench.order == ["critical1", "critical2"]


@pytest.mark.parametrize("seed", range(5))
async def test_random_overload_sheds_only_the_lowest_tier_below_the_newcomer(seed: int) -> None:
    rng = random.Random(seed)
    bench = Bench(max_queue=4)
    await bench.hold()
    waiting: list[tuple[str, Priority]] = []  # the queue as the test expects it
    for i in range(60):
        tier = rng.choice(list(P))
        name = f"{tier.label}{i}"
        await bench.arrive(name, tier)
        if len(waiting) < 4:
            waiting.append((name, tier))
            continue
        lower = [w for w in waiting if w[1] < tier]
        if not lower:  # nothing to shed: the newcomer is refused
            assert "shed" not in (await bench.error_of(name)).metadata
            continue
        lowest = min(w[1] for w in lower)
        victim = [w for w in waiting if w[1] == lowest][-1]  # the newest of the lowest tier
        error = await bench.error_of(victim[0])
        assert error.metadata == {"target": T, "priority": lowest.label, "shed": "true"}
        assert victim[1] is not P.CRITICAL
        waiting.remove(victim)
        waiting.append((name, tier))
    bench.release.set()
    expected = sorted(waiting, key=lambda w: -w[1])  # stable: arrival order within a tier
    for name, _ in waiting:
        await bench.tasks[name]
    assert bench.order == [name for name, _ in expected]
    assert bench.limiter.in_flight(T) == 0 and bench.limiter.queued(T) == 0


async def test_cancelled_while_queued_leaves_its_tier_and_frees_its_place() -> None:
    bench = Bench(max_queue=2)
    await bench.hold()
    await bench.arrive("low1", P.LOW)
    await bench.arrive("low2", P.LOW)
    bench.tasks["low2"].cancel()  # its future is cancelled at once, its task runs later
    await bench.arrive("normal", P.NORMAL)  # takes low2's place: low1 is not shed
    with pytest.raises(asyncio.CancelledError):
        await bench.tasks["low2"]
    assert bench.limiter.queued_by_tier(T)[P.LOW] == 1
    bench.release.set()
    await bench.tasks["low1"]
    await bench.tasks["normal"]
    assert bench.order == ["normal", "low1"]
    assert bench.limiter.in_flight(T) == 0 and bench.limiter.queued(T) == 0


async def test_a_shed_waiter_holds_no_slot() -> None:
    bench = Bench(max_queue=1)
    await bench.hold()
    await bench.arrive("low", P.LOW)
    await bench.arrive("high", P.HIGH)
    await bench.error_of("low")
    assert bench.limiter.in_flight(T) == 1 and bench.limiter.queued(T) == 1
    bench.release.set()
    await bench.tasks["high"]
    assert bench.limiter.in_flight(T) == 0
    async with bench.limiter.slot(T, P.BATCH):  # the slot is free again
        assert bench.limiter.in_flight(T) == 1


async def test_retry_after_of_a_critical_call_ignores_lower_waiters() -> None:
    now = [0.0]
    limiter = TargetLimiter(QueueSettings(max_concurrency=1), clock=lambda: now[0])
    async with limiter.slot(T):
        now[0] += 1.0
    bench = Bench()
    bench.limiter = limiter
    await bench.hold()
    for i in range(3):
        await bench.arrive(f"low{i}", P.LOW)
    assert limiter.retry_after(T, P.CRITICAL) == pytest.approx(1.0)
    assert limiter.retry_after(T, P.LOW) == pytest.approx(4.0)
    assert limiter.retry_after(T) == pytest.approx(4.0)
    bench.release.set()
    await asyncio.gather(*bench.tasks.values())
