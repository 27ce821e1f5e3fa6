import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.orchestrator.admission import BudgetCaps, BudgetManager, Reservation, _redis
from tests.orchestrator.admission.fakes import FakeClock

T, K = "tenant:acme", "key:abc123"
NOON = datetime(2025, 1, 15, 12, tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


class Managers:
    """Makes managers on one fake clock: in-process, or sharing a Redis namespace."""

    def __init__(self, clock: FakeClock, redis_url: str | None, namespace: str) -> None:
        self.clock, self.redis_url, self.namespace = clock, redis_url, namespace
        self.made: list[BudgetManager] = []

    def one(self) -> BudgetManager:
        manager = BudgetManager(
            clock=self.clock, redis_url=self.redis_url, namespace=self.namespace
        )
        self.made.append(manager)
        return manager

    def two(self) -> tuple[BudgetManager, BudgetManager]:
        """Two replicas with Redis; in-process (where nothing is shared) one manager twice."""
        first = self.one()
        return first, (self.one() if self.redis_url is not None else first)


@pytest.fixture(params=["memory", "redis"])
async def managers(
    request: pytest.FixtureRequest, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Managers]:
    redis_url, namespace = None, "llmesh:budget"
    if request.param == "redis":
        # what these tests check is the caps' arithmetic, not Redis timeouts: on a loaded
        # machine 200 concurrent scripts can take longer than the production 0.5 s each
        monkeypatch.setattr(_redis, "TIMEOUT", 10.0)
        redis_url = request.getfixturevalue("redis_server")
        namespace = request.getfixturevalue("namespace")
    made = Managers(clock, redis_url, namespace)
    yield made
    for manager in made.made:
        await manager.aclose()


async def exceeded(manager: BudgetManager, scopes: list[str], amount: float) -> LlmeshError:
    with pytest.raises(LlmeshError) as info:
        await manager.reserve(scopes, amount)
    assert info.value.reason is Reason.BUDGET_EXCEEDED
    assert info.value.retry_after is None
    return info.value


async def test_commit_books_the_actual_cost(managers: Managers) -> None:
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(daily_usd=1.0))
    reservation = await budgets.reserve([T], 0.5)
    assert reservation.scopes == (T,) and reservation.amount == 0.5
    await budgets.commit(reservation, 0.2)
    assert await budgets.spent(T) == pytest.approx((0.2, 0.2))
    await budgets.reserve([T], 0.8)  # only the actual cost stayed spent


async def test_over_the_daily_cap_is_refused_naming_scope_and_cap(managers: Managers) -> None:
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(daily_usd=1.0, monthly_usd=20.0))
    await budgets.commit(await budgets.reserve([T], 0.6), 0.6)
    await budgets.reserve([T], 0.3)
    err = await exceeded(budgets, [T], 0.2)
    assert T in err.message and "daily budget of 1.00 USD" in err.message
    assert err.metadata == {
        "quota.subject": T,
        "quota.description": "daily budget of 1.00 USD (UTC calendar day)",
    }
    await budgets.reserve([T], 0.1)  # the refusal held nothing: exactly the rest still fits


async def test_over_the_monthly_cap_is_refused(managers: Managers) -> None:
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(daily_usd=10.0, monthly_usd=12.0))
    await budgets.seed(T, 0.0, 11.5)
    err = await exceeded(budgets, [T], 1.0)
    assert err.metadata["quota.description"] == "monthly budget of 12.00 USD (UTC calendar month)"


async def test_release_after_a_failed_call_frees_the_hold(managers: Managers) -> None:
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(daily_usd=1.0))
    held = await budgets.reserve([T], 0.8)
    await exceeded(budgets, [T], 0.5)
    await budgets.release(held)
    await budgets.reserve([T], 1.0)
    assert await budgets.spent(T) == (0.0, 0.0)


async def test_commit_and_release_are_idempotent(managers: Managers) -> None:
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(daily_usd=1.0))
    reservation = await budgets.reserve([T], 0.5)
    await budgets.commit(reservation, 0.4)
    await budgets.commit(reservation, 0.4)
    await budgets.release(reservation)
    assert await budgets.spent(T) == pytest.approx((0.4, 0.4))
    failed = await budgets.reserve([T], 0.5)
    await asyncio.gather(budgets.release(failed), budgets.release(failed))
    await budgets.commit(failed, 0.5)
    assert await budgets.spent(T) == pytest.approx((0.4, 0.4))


async def test_actual_cost_above_the_reservation_is_recorded(managers: Managers) -> None:
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(daily_usd=1.0))
    await budgets.commit(await budgets.reserve([T], 0.1), 1.3)
    assert await budgets.spent(T) == pytest.approx((1.3, 1.3))
    await exceeded(budgets, [T], 0.0001)


async def test_several_scopes_are_all_or_nothing(managers: Managers) -> None:
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(daily_usd=10.0))
    budgets.set_caps(K, BudgetCaps(daily_usd=1.0))
    first = await budgets.reserve([T, K, "session:untracked"], 0.8)
    assert first.scopes == (T, K)
    err = await exceeded(budgets, [T, K], 0.5)
    assert err.metadata["quota.subject"] == K
    await budgets.reserve([T], 9.2)  # the tenant holds 0.8 only: the refusal took nothing
    await exceeded(budgets, [T], 0.01)
    await budgets.commit(first, 0.8)
    assert await budgets.spent(T) == pytest.approx((0.8, 0.8))
    assert await budgets.spent(K) == pytest.approx((0.8, 0.8))


async def test_extend_grows_a_hold_in_every_scope_or_in_none(managers: Managers) -> None:
    budgets, replica = managers.two()
    for manager in (budgets, replica):
        manager.set_caps(T, BudgetCaps(daily_usd=10.0))
        manager.set_caps(K, BudgetCaps(daily_usd=1.0))
    call = await budgets.reserve([T, K], 0.5)
    await budgets.extend(call, 0.3)
    assert call.amount == pytest.approx(0.8)
    await exceeded(replica, [K], 0.3)  # the key holds 0.8 now, everywhere
    with pytest.raises(LlmeshError) as info:
        await budgets.extend(call, 0.3)  # the key's cap: refused, nothing more held
    err = info.value
    assert err.reason is Reason.BUDGET_EXCEEDED and err.metadata["quota.subject"] == K
    assert "0.3000 USD more" in err.message and "0.8000 USD held" in err.message
    assert call.amount == pytest.approx(0.8)
    await replica.reserve([T], 9.2)  # the tenant holds 0.8 only: the refusal took nothing
    await exceeded(replica, [T], 0.01)
    await budgets.commit(call, 0.7)
    assert await budgets.spent(K) == pytest.approx((0.7, 0.7))
    await replica.reserve([K], 0.3)  # the whole extended hold was freed
    with pytest.raises(LlmeshError) as settled:
        await budgets.extend(call, 0.1)
    assert settled.value.reason is Reason.INTERNAL


async def test_concurrent_extensions_never_overshoot_the_cap(managers: Managers) -> None:
    budgets, replica = managers.two()
    for manager in (budgets, replica):
        manager.set_caps(T, BudgetCaps(daily_usd=1.0))
    calls = [await (budgets, replica)[i % 2].reserve([T], 0.05) for i in range(10)]

    async def grow(i: int) -> bool:
        try:
            await (budgets, replica)[i % 2].extend(calls[i % 10], 0.05)
        except LlmeshError:
            return False
        return True

    granted = sum(await asyncio.gather(*(grow(i) for i in range(40))))
    assert granted == 10  # 0.5 was free: exactly ten extensions of 0.05 fit
    assert sum(c.amount for c in calls) == pytest.approx(1.0)


async def test_scopes_without_caps_are_not_tracked(managers: Managers) -> None:
    budgets = managers.one()
    reservation = await budgets.reserve(["session:s1"], 1e6)
    assert reservation.scopes == ()
    await budgets.commit(reservation, 1e6)
    assert await budgets.spent("session:s1") == (0.0, 0.0)
    budgets.set_caps(T, BudgetCaps(daily_usd=1.0))
    budgets.set_caps(T, BudgetCaps())  # no caps: tracking stops
    assert (await budgets.reserve([T], 5.0)).scopes == ()


async def test_a_scope_named_twice_is_held_once(managers: Managers) -> None:
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(daily_usd=1.0))
    await budgets.commit(await budgets.reserve([T, T], 0.6), 0.6)
    assert await budgets.spent(T) == pytest.approx((0.6, 0.6))
    await budgets.reserve([T], 0.4)


async def test_day_rolls_over_at_utc_midnight(managers: Managers, clock: FakeClock) -> None:
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(daily_usd=1.0, monthly_usd=5.0))
    clock.now = datetime(2025, 1, 15, 23, 59, 59, tzinfo=UTC).timestamp()
    await budgets.commit(await budgets.reserve([T], 1.0), 1.0)
    await exceeded(budgets, [T], 0.5)
    clock.advance(1.0)  # 2025-01-16 00:00:00 UTC
    assert await budgets.spent(T) == pytest.approx((0.0, 1.0))
    await budgets.commit(await budgets.reserve([T], 1.0), 1.0)
    assert await budgets.spent(T) == pytest.approx((1.0, 2.0))


async def test_month_rolls_over_at_utc_midnight(managers: Managers, clock: FakeClock) -> None:
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(monthly_usd=3.0))
    clock.now = datetime(2025, 1, 31, 23, 59, 59, 500_000, tzinfo=UTC).timestamp()
    await budgets.seed(T, 1.0, 2.9)
    await exceeded(budgets, [T], 0.2)
    clock.advance(0.5)  # 2025-02-01 00:00:00 UTC
    assert await budgets.spent(T) == (0.0, 0.0)
    await budgets.reserve([T], 3.0)


async def test_seed_raises_but_never_lowers_recorded_spend(managers: Managers) -> None:
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(daily_usd=1.0))
    await budgets.seed(T, 0.7, 5.0)
    await exceeded(budgets, [T], 0.4)
    await budgets.seed(T, 0.1, 0.1)
    assert await budgets.spent(T) == pytest.approx((0.7, 5.0))
    await budgets.seed(T, 0.9, 6.0)
    assert await budgets.spent(T) == pytest.approx((0.9, 6.0))


async def test_replicas_share_spend_and_holds(
    managers: Managers, request: pytest.FixtureRequest
) -> None:
    a, b = managers.two()
    for manager in (a, b):
        manager.set_caps(T, BudgetCaps(daily_usd=1.0))
    held = await a.reserve([T], 0.6)
    await exceeded(b, [T], 0.5)
    await a.commit(held, 0.5)
    assert await b.spent(T) == pytest.approx((0.5, 0.5))
    await b.reserve([T], 0.5)


async def test_an_unsettled_hold_lapses_after_its_lease(clock: FakeClock) -> None:
    budgets = BudgetManager(clock=clock)
    budgets.set_caps(T, BudgetCaps(daily_usd=1.0))
    abandoned = await budgets.reserve([T], 1.0)
    await exceeded(budgets, [T], 0.5)
    clock.advance(budgets.hold_lease)
    await budgets.reserve([T], 0.5)
    await budgets.commit(abandoned, 0.2)  # a late commit still books the money spent
    assert await budgets.spent(T) == pytest.approx((0.2, 0.2))


async def test_redis_hold_lapses_after_its_lease(redis_server: str, namespace: str) -> None:
    budgets = BudgetManager(redis_url=redis_server, namespace=namespace)
    budgets.hold_lease = 0.05  # leases run on the Redis server's clock
    try:
        budgets.set_caps(T, BudgetCaps(daily_usd=1.0))
        await budgets.reserve([T], 1.0)
        await exceeded(budgets, [T], 0.5)
        await asyncio.sleep(0.1)
        await budgets.reserve([T], 0.5)
    finally:
        await budgets.aclose()


async def test_unreachable_redis_refuses_reservations_but_not_settlements() -> None:
    budgets = BudgetManager(redis_url="redis://127.0.0.1:1/0")
    try:
        budgets.set_caps(T, BudgetCaps(daily_usd=1.0))
        with pytest.raises(LlmeshError) as info:
            await budgets.reserve([T], 0.1)
        assert info.value.reason is Reason.INTERNAL
        await budgets.reserve(["session:untracked"], 0.1)  # nothing to check: no Redis
        await budgets.commit(Reservation("lost", (T,), 0.1), 0.1)  # logged, not raised
    finally:
        await budgets.aclose()


@pytest.mark.parametrize(
    "kwargs", [{"daily_usd": -1.0}, {"monthly_usd": float("nan")}, {"daily_usd": float("inf")}]
)
def test_caps_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BudgetCaps(**kwargs)


async def test_amounts_are_validated(managers: Managers) -> None:
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(daily_usd=1.0))
    with pytest.raises(ValueError):
        await budgets.reserve([T], -0.1)
    reservation = await budgets.reserve([T], 0.1)
    with pytest.raises(ValueError):
        await budgets.commit(reservation, float("nan"))


# -- the cap holds under concurrency ----------------------------------------------------------

CAP = 1.0
REQUESTS = 200


async def _watch(budgets: BudgetManager, done: asyncio.Event, peaks: list[float]) -> None:
    """Samples spend while the requests run; every sample must be within the cap."""
    while not done.is_set():
        today, month = await budgets.spent(T)
        peaks.append(max(today, month))
        await asyncio.sleep(0)


async def test_200_concurrent_requests_admit_exactly_as_many_as_fit(managers: Managers) -> None:
    """All 200 reserve at once (each 0.05 USD against 1 USD: 20 fit), then each sleeps a
    little and commits a random actual cost up to its reservation."""
    a, b = managers.two()
    for manager in (a, b):
        manager.set_caps(T, BudgetCaps(daily_usd=CAP, monthly_usd=CAP))
    rng = random.Random(7)
    amount = 0.05
    reserved = asyncio.Event()
    attempts = 0
    costs: list[float] = []

    async def request(i: int) -> bool:
        nonlocal attempts
        manager = a if i % 2 else b
        try:
            reservation = await manager.reserve([T, K], amount)
        except LlmeshError as err:
            assert err.reason is Reason.BUDGET_EXCEEDED
            return False
        finally:
            attempts += 1
            if attempts == REQUESTS:
                reserved.set()
        await reserved.wait()
        await asyncio.sleep(rng.uniform(0, 0.01))
        cost = rng.uniform(0, amount)
        await manager.commit(reservation, cost)
        costs.append(cost)
        assert max(await manager.spent(T)) <= CAP + 1e-9
        return True

    done, peaks = asyncio.Event(), list[float]()
    watcher = asyncio.create_task(_watch(a, done, peaks))
    admitted = await asyncio.gather(*(request(i) for i in range(REQUESTS)))
    done.set()
    await watcher
    assert sum(admitted) == round(CAP / amount) == 20
    assert peaks and max(peaks) <= CAP + 1e-9
    assert await b.spent(T) == pytest.approx((sum(costs), sum(costs)))


async def test_200_concurrent_requests_never_overshoot_the_cap(managers: Managers) -> None:
    """Random amounts; reservations, sleeps and commits interleave freely. Spend never
    passes the cap, and no request was refused while it would have fit."""
    a, b = managers.two()
    for manager in (a, b):
        manager.set_caps(T, BudgetCaps(daily_usd=CAP))
    rng = random.Random(11)
    amounts = [rng.uniform(0.01, 0.1) for _ in range(REQUESTS)]
    booked: list[float] = []
    refused: list[float] = []

    async def request(i: int) -> None:
        manager = a if i % 2 else b
        await asyncio.sleep(rng.uniform(0, 0.005))
        try:
            reservation = await manager.reserve([T], amounts[i])
        except LlmeshError:
            refused.append(amounts[i])
            return
        await asyncio.sleep(rng.uniform(0, 0.005))
        cost = rng.uniform(0, amounts[i])
        await manager.commit(reservation, cost)
        booked.append(cost)
        assert (await manager.spent(T))[0] <= CAP + 1e-9

    done, peaks = asyncio.Event(), list[float]()
    watcher = asyncio.create_task(_watch(a, done, peaks))
    await asyncio.gather(*(request(i) for i in range(REQUESTS)))
    done.set()
    await watcher
    spent_today = (await a.spent(T))[0]
    assert max(peaks) <= CAP + 1e-9 and spent_today <= CAP + 1e-9
    assert spent_today == pytest.approx(sum(booked))
    assert refused, "the cap was never reached: the test proves nothing"
    assert len(booked) + len(refused) == REQUESTS


async def test_200_concurrent_random_amounts_refuse_only_what_does_not_fit(
    managers: Managers,
) -> None:
    """Random amounts reserved all at once: every refused amount is more than what was left
    after all admissions (while reserving, room only shrinks), and admissions fit the cap."""
    budgets = managers.one()
    budgets.set_caps(T, BudgetCaps(daily_usd=CAP))
    rng = random.Random(3)
    amounts = [rng.uniform(0.001, 0.05) for _ in range(REQUESTS)]

    async def request(i: int) -> Reservation | None:
        try:
            return await budgets.reserve([T], amounts[i])
        except LlmeshError:
            return None

    results = await asyncio.gather(*(request(i) for i in range(REQUESTS)))
    held = sum(r.amount for r in results if r is not None)
    refused = [amounts[i] for i, r in enumerate(results) if r is None]
    assert held <= CAP + 1e-9 and refused
    assert all(amount > CAP - held - 1e-9 for amount in refused)
    await asyncio.gather(*(budgets.commit(r, r.amount) for r in results if r is not None))
    assert (await budgets.spent(T))[0] == pytest.approx(held)
