"""Ordering a pool's deployments for one call: the first is the pick, the rest its failover.

Every strategy starts from smooth weighted round robin (nginx's: each deployment gains its
weight, the one with the most current weight leads and pays back the total), so ties
spread calls by weight; then sorts by its own key, stably:

- ``round_robin``: the round-robin order itself;
- ``least_inflight``: attempts in flight per unit of weight;
- ``latency``: peak EWMA latency times (in flight + 1), per unit of weight (Finagle's and
  Linkerd's cost);
- ``lowest_cost``: the list price of a million input plus a million output tokens
  (deployments without a price go last).

A deployment whose last minute used `near_limit` of its ``rpm`` or ``tpm`` is left out of
the call (a skip with RATE_LIMIT_EXCEEDED in the attempt trail) while another has room;
when none has, all are kept, the least used first. Open breakers are the engine's to skip,
as for any target (so a half-open trial still reaches a recovering deployment).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmesh.services.common.route_settings import DeploymentConfig, PoolConfig
from llmesh.services.core.target import Target
from llmesh.services.orchestrator.pools.stats import DeploymentStats

__all__ = ["Balancer", "Choice", "PriceOf", "Skip"]

PriceOf = Callable[[Target], float | None]
"""USD of a million input plus a million output tokens at a target; None: no price."""


@dataclass(frozen=True, slots=True)
class Skip:
    """A deployment left out of one call, and why."""

    target: Target
    why: str


@dataclass(frozen=True, slots=True)
class Choice:
    """A pool's order for one call, with why each deployment stands where it does."""

    targets: tuple[Target, ...]
    notes: tuple[str, ...]
    """One per target: the strategy and the figure it ranked by."""
    skipped: tuple[Skip, ...] = ()


class _Wrr:
    """Smooth weighted round robin over one pool's deployments."""

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: dict[str, float] = {}

    def order(self, deployments: Sequence[DeploymentConfig]) -> list[DeploymentConfig]:
        total = 0.0
        for d in deployments:
            self.current[d.target] = self.current.get(d.target, 0.0) + d.weight
            total += d.weight
        ranked = sorted(deployments, key=lambda d: -self.current[d.target])
        self.current[ranked[0].target] -= total
        return ranked


class Balancer:
    """Orders pools' deployments per call from `DeploymentStats` and prices."""

    def __init__(self, stats: DeploymentStats, price: PriceOf | None = None) -> None:
        self.stats = stats
        self._price = price or (lambda _t: None)
        self._wrr: dict[tuple[str, ...], _Wrr] = {}

    def order(self, pool: PoolConfig, targets: Sequence[Target], *, tokens: float = 0.0) -> Choice:
        """`targets` (the pool's deployments' targets, in configured order) ordered for one
        call of about `tokens` tokens."""
        by_name = {t.name: t for t in targets}
        key = tuple(by_name)
        wrr = self._wrr.get(key)
        if wrr is None:
            wrr = self._wrr[key] = _Wrr()
        ranked = wrr.order(pool.deployments)
        kept, skipped, fullness = self._room(pool, ranked, tokens)
        scored = [(self._score(pool.strategy, d), d) for d in kept]
        scored.sort(key=lambda s: s[0][0])
        if not skipped and any(fullness[d.target] > pool.near_limit for d in kept):
            scored.sort(key=lambda s: fullness[s[1].target])  # none had room: least used first
        out = tuple(by_name[d.target] for _, d in scored)
        n = len(out)
        notes = tuple(
            f"{pool.strategy} {i + 1}/{n}: {why}" for i, ((_, why), _d) in enumerate(scored)
        )
        skips = tuple(Skip(by_name[d.target], why) for d, why in skipped)
        return Choice(out, notes, skips)

    def _room(
        self, pool: PoolConfig, ranked: list[DeploymentConfig], tokens: float
    ) -> tuple[list[DeploymentConfig], list[tuple[DeploymentConfig, str]], dict[str, float]]:
        """The deployments with room, those near a limit (with why), and each one's use."""
        kept: list[DeploymentConfig] = []
        near: list[tuple[DeploymentConfig, str]] = []
        fullness: dict[str, float] = {}
        for d in ranked:
            if d.rpm is None and d.tpm is None:
                kept.append(d)
                fullness[d.target] = 0.0
                continue
            requests, used = self.stats.used(d.target)
            share, why = 0.0, ""
            for limit, value, unit in ((d.rpm, requests + 1, "rpm"), (d.tpm, used + tokens, "tpm")):
                if limit is not None and value / limit > share:
                    share = value / limit
                    why = f"near its {unit} limit: {value:g} of {limit:g} in the last minute"
            fullness[d.target] = share
            if share > pool.near_limit:
                near.append((d, why))
            else:
                kept.append(d)
        if not kept:  # every one is near its limit: keep them all, the least used first
            return [d for d, _ in near], [], fullness
        return kept, near, fullness

    def _score(self, strategy: str, d: DeploymentConfig) -> tuple[float, str]:
        """The strategy's sort key for `d` and its note; the round-robin order breaks ties."""
        stats = self.stats
        if strategy == "least_inflight":
            inflight = stats.inflight(d.target)
            return inflight / d.weight, f"{inflight} in flight"
        if strategy == "latency":
            inflight = stats.inflight(d.target)
            latency = stats.latency(d.target)
            cost = latency * (inflight + 1) / d.weight
            return cost, f"cost {cost:.4f} (latency {latency * 1000:.1f} ms, {inflight} in flight)"
        if strategy == "lowest_cost":
            provider, _, model = d.target.partition("/")
            price = self._price(Target(provider, model))
            if price is None:
                return float("inf"), "no price"
            return price, f"${price:g} per 1M in + 1M out tokens"
        return 0.0, "weighted round robin"
