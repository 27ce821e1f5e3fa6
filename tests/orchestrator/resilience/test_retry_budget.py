import math

import pytest

from llmesh.services.orchestrator.resilience import RetryBudget, RetryBudgetSettings


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def spend_all(budget: RetryBudget, target: str, limit: int = 10_000) -> int:
    spent = 0
    while spent < limit and budget.try_spend(target):
        spent += 1
    return spent


def test_ratio_of_requests_plus_minimum_then_refused() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetSettings(ratio=0.2, window=10, min_retries=3), clock=clock)
    for _ in range(100):
        budget.record_request("a/m")
    assert spend_all(budget, "a/m") == 20 + 3
    assert not budget.try_spend("a/m")
    # more traffic earns more retries: 5 requests at 20 % is one more
    for _ in range(5):
        budget.record_request("a/m")
    assert spend_all(budget, "a/m") == 1


def test_low_traffic_still_gets_the_minimum() -> None:
    budget = RetryBudget(RetryBudgetSettings(min_retries=3), clock=FakeClock())
    assert spend_all(budget, "a/m") == 3
    budget.record_request("a/m")  # retries < 3 + 0.2: a started retry is a whole one
    assert budget.try_spend("a/m")
    assert not budget.try_spend("a/m")


def test_zero_ratio_and_zero_minimum() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetSettings(ratio=0.0, min_retries=0), clock=clock)
    for _ in range(50):
        budget.record_request("a/m")
    assert not budget.try_spend("a/m")


def test_float_products_do_not_grant_an_extra_retry() -> None:
    for ratio, requests in [(0.07, 100), (0.14, 50), (0.28, 25), (0.1, 30), (0.1, 3), (0.2, 7)]:
        budget = RetryBudget(RetryBudgetSettings(ratio=ratio, min_retries=0), clock=FakeClock())
        for _ in range(requests):
            budget.record_request("a/m")
        expected = math.ceil(round(ratio * requests, 6))
        assert spend_all(budget, "a/m") == expected, (ratio, requests)


def test_window_slides() -> None:
    clock = FakeClock(0.0)
    budget = RetryBudget(RetryBudgetSettings(ratio=0.2, window=10, min_retries=3), clock=clock)
    for _ in range(100):
        budget.record_request("a/m")
    clock.now = 5.0
    for _ in range(50):
        budget.record_request("a/m")
    assert spend_all(budget, "a/m") == 3 + 30  # 150 requests in the window
    clock.now = 10.5  # the requests at t=0 left the window; the 33 retries at t=5 did not
    assert not budget.try_spend("a/m")  # 33 retries >= 3 + 0.2 * 50
    clock.now = 15.5  # everything left the window
    assert spend_all(budget, "a/m") == 3


def test_window_is_at_least_nine_tenths_and_at_most_the_window() -> None:
    clock = FakeClock(0.0)
    budget = RetryBudget(RetryBudgetSettings(ratio=1.0, window=10, min_retries=0), clock=clock)
    budget.record_request("a/m")
    clock.now = 9.99  # still in the window
    assert budget.try_spend("a/m")
    clock.now = 10.0
    budget.record_request("b/m")
    clock.now = 19.0  # 9 s later: still counted
    assert budget.try_spend("b/m")


def test_targets_are_independent() -> None:
    budget = RetryBudget(RetryBudgetSettings(min_retries=1, ratio=0.0), clock=FakeClock())
    assert budget.try_spend("a/m")
    assert not budget.try_spend("a/m")
    assert budget.try_spend("b/m")


def test_memory_stays_bounded_with_many_targets_over_time() -> None:
    clock = FakeClock(0.0)
    budget = RetryBudget(RetryBudgetSettings(window=10), clock=clock)
    peak = 0
    for i in range(20_000):
        clock.now = i * 0.01  # 100 new targets per second for 200 s
        budget.record_request(f"p/{i}")
        budget.try_spend(f"p/{i}")
        peak = max(peak, budget.tracked())
    assert peak <= 10 * 100 + 100  # one window of targets (plus one bucket)
    clock.now += 11
    budget.record_request("last/one")
    assert budget.tracked() == 1


def test_one_busy_target_keeps_a_fixed_size_window() -> None:
    clock = FakeClock(0.0)
    budget = RetryBudget(RetryBudgetSettings(window=1.0), clock=clock)
    for i in range(10_000):
        clock.now = i * 0.003
        budget.record_request("a/m")
        budget.try_spend("a/m")
    window = budget._windows["a/m"]
    assert len(window.requests) == len(window.retries) == len(window.epochs) == 10
    assert budget.tracked() == 1


@pytest.mark.parametrize("kwargs", [{"ratio": -0.1}, {"window": 0.0}, {"min_retries": -1}], ids=str)
def test_settings_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryBudgetSettings(**kwargs)  # type: ignore[arg-type]
