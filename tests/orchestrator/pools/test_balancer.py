"""Each strategy's order on a fake clock, near-limit avoidance, and the notes it leaves."""

from __future__ import annotations

from collections import Counter

from llmesh.services.common.route_settings import DeploymentConfig, PoolConfig
from llmesh.services.core.target import Target
from llmesh.services.orchestrator.pools import Balancer, DeploymentStats

A, B, C = "p1/m", "p2/m", "p3/m"
TARGETS = [Target(*n.split("/")) for n in (A, B, C)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pool(strategy: str, *deployments: DeploymentConfig, near: float = 0.9) -> PoolConfig:
    chosen = deployments or tuple(DeploymentConfig(t) for t in (A, B, C))
    return PoolConfig(chosen, strategy, latency_decay=10.0, near_limit=near)


def names(targets: tuple[Target, ...]) -> list[str]:
    return [t.name for t in targets]


def test_weighted_round_robin_follows_the_weights_smoothly() -> None:
    p = pool(
        "round_robin",
        DeploymentConfig(A, weight=3),
        DeploymentConfig(B, weight=1),
        DeploymentConfig(C, weight=1),
    )
    balancer = Balancer(DeploymentStats(clock=Clock()))
    firsts = [balancer.order(p, TARGETS).targets[0].name for _ in range(10)]
    assert Counter(firsts) == {A: 6, B: 2, C: 2}
    assert firsts[:5].count(A) == 3  # smooth: spread within each round, not in a burst
    choice = balancer.order(p, TARGETS)
    assert sorted(names(choice.targets)) == [A, B, C]  # every deployment stays a failover


def test_least_inflight_picks_the_least_loaded_per_unit_of_weight() -> None:
    stats = DeploymentStats(clock=Clock())
    for target, n in ((A, 3), (B, 1), (C, 2)):
        for _ in range(n):
            stats.sent(target, 0)
    balancer = Balancer(stats)
    choice = balancer.order(pool("least_inflight"), TARGETS)
    assert names(choice.targets) == [B, C, A]
    assert choice.notes[0] == "least_inflight 1/3: 1 in flight"
    weighted = pool(
        "least_inflight", DeploymentConfig(A, weight=4), DeploymentConfig(B), DeploymentConfig(C)
    )
    assert names(balancer.order(weighted, TARGETS).targets)[0] == A  # 3/4 < 1


def test_latency_prefers_the_fast_deployment_until_its_load_outweighs_it() -> None:
    clock = Clock()
    stats = DeploymentStats(clock=clock)
    stats.first_token(A, 0.40)
    stats.first_token(B, 0.02)
    stats.first_token(C, 0.10)
    balancer = Balancer(stats)
    choice = balancer.order(pool("latency"), TARGETS)
    assert names(choice.targets) == [B, C, A]
    assert choice.notes[0].startswith("latency 1/3: cost 0.0200 (latency 20.0 ms, 0 in flight)")
    for _ in range(5):  # B busy: (5 + 1) * 0.02 = 0.12 > C's 0.10
        stats.sent(B, 0)
    assert names(balancer.order(pool("latency"), TARGETS).targets)[0] == C


def test_latency_tries_an_idle_slow_deployment_again_as_its_estimate_decays() -> None:
    clock = Clock()
    stats = DeploymentStats(clock=clock)
    stats.first_token(A, 2.0)
    stats.first_token(B, 0.05)
    balancer = Balancer(stats)
    two = pool("latency", DeploymentConfig(A), DeploymentConfig(B))
    assert names(balancer.order(two, TARGETS[:2]).targets) == [B, A]
    for _ in range(3):  # B answers every call: its samples keep it at 50 ms
        clock.now += 10.0
        stats.first_token(B, 0.05)
        assert names(balancer.order(two, TARGETS[:2]).targets)[0] == B  # A: 2 s x e^-3 = 0.1 s
    clock.now += 10.0
    stats.first_token(B, 0.05)
    # 40 s on, A has decayed to 2 s x e^-4, about 37 ms: below B's 50 ms, so it is probed
    assert stats.latency(A) < stats.latency(B)
    assert names(balancer.order(two, TARGETS[:2]).targets)[0] == A


def test_lowest_cost_goes_by_price_and_puts_unpriced_last() -> None:
    prices = {A: 30.0, B: 12.5}
    balancer = Balancer(DeploymentStats(clock=Clock()), lambda t: prices.get(t.name))
    choice = balancer.order(pool("lowest_cost"), TARGETS)
    assert names(choice.targets) == [B, A, C]
    assert choice.notes == (
        "lowest_cost 1/3: $12.5 per 1M in + 1M out tokens",
        "lowest_cost 2/3: $30 per 1M in + 1M out tokens",
        "lowest_cost 3/3: no price",
    )


def test_a_deployment_near_its_rpm_limit_is_skipped_while_another_has_room() -> None:
    clock = Clock()
    stats = DeploymentStats(clock=clock)
    for _ in range(9):
        stats.sent(A, 0)
        stats.ended(A, 0)
    p = pool("round_robin", DeploymentConfig(A, weight=100, rpm=10), DeploymentConfig(B))
    choice = Balancer(stats).order(p, TARGETS[:2])
    assert names(choice.targets) == [B]
    assert [(s.target.name, s.why) for s in choice.skipped] == [
        (A, "near its rpm limit: 10 of 10 in the last minute")
    ]
    clock.now += 61  # the minute has passed: A has room again and its weight wins
    assert names(Balancer(stats).order(p, TARGETS[:2]).targets)[0] == A


def test_a_deployment_near_its_tpm_limit_counts_the_call_about_to_be_sent() -> None:
    stats = DeploymentStats(clock=Clock())
    stats.sent(A, 800)
    p = pool("round_robin", DeploymentConfig(A, weight=100, tpm=1000), DeploymentConfig(B))
    assert names(Balancer(stats).order(p, TARGETS[:2], tokens=50).targets)[0] == A  # 85 %
    choice = Balancer(stats).order(p, TARGETS[:2], tokens=150)  # 95 %
    assert names(choice.targets) == [B]
    assert "tpm limit: 950 of 1000" in choice.skipped[0].why


def test_when_every_deployment_is_near_its_limit_all_stay_the_least_used_first() -> None:
    stats = DeploymentStats(clock=Clock())
    for target, n in ((A, 10), (B, 19)):
        for _ in range(n):
            stats.sent(target, 0)
    p = pool(
        "round_robin", DeploymentConfig(A, weight=1, rpm=10), DeploymentConfig(B, weight=9, rpm=20)
    )
    choice = Balancer(stats).order(p, TARGETS[:2])
    assert names(choice.targets) == [B, A]  # 20/20 used is less than A's 11/10
    assert choice.skipped == ()
