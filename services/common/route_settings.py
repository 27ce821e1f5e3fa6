"""The ``routes`` section: named routes, and a route's deployment pool.

Part of the configuration (`llmesh.services.common.config`, which re-exports these names).
A route names either an ordered list of ``targets`` or a ``pool`` of deployments (the same
model behind several providers entries), each a ``provider/model`` with its
own weight and optional requests/tokens per minute, and the strategy that orders them per
call. ``fallbacks`` (model names, aliases or other routes) follow the targets or the pool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmesh.services.common.config_fields import ConfigError, names
from llmesh.services.common.provider_settings import field_default
from llmesh.services.common.step_settings import StepsConfig, parse_steps

__all__ = [
    "MID_STREAM_POLICIES",
    "POOL_KEYS",
    "STRATEGIES",
    "DeploymentConfig",
    "PoolConfig",
    "RouteConfig",
    "check_fallbacks",
    "parse_fallbacks",
    "parse_pool",
    "parse_route",
]

STRATEGIES = ("round_robin", "least_inflight", "latency", "lowest_cost")
"""How a pool orders its deployments for each call: smooth weighted round robin; fewest
attempts in flight per unit of weight; lowest peak-EWMA latency times (in flight + 1) per
unit of weight; lowest list price (ties: weighted round robin)."""

POOL_KEYS = frozenset({"pool", "strategy", "latency_decay", "near_limit"})
"""The route keys that describe its pool (all but ``pool`` need one)."""


@dataclass(frozen=True)
class DeploymentConfig:
    """One deployment of a pool: a ``provider/model`` target with its weight and limits."""

    target: str
    """The ``provider/model`` name; its breaker and in-flight count are its own."""
    weight: float = 1.0
    """Its share of the calls under ``round_robin``; divides its load under the others."""
    rpm: float | None = None
    """The upstream's requests per minute for this deployment; near it, it is avoided."""
    tpm: float | None = None
    """The upstream's tokens per minute (input plus output); near it, it is avoided."""


@dataclass(frozen=True)
class PoolConfig:
    """A route's deployments and how each call orders them."""

    deployments: tuple[DeploymentConfig, ...]
    """The deployments, at least one, each target once."""
    strategy: str = "round_robin"
    """One of `STRATEGIES`."""
    latency_decay: float = 10.0
    """``latency``: seconds over which a deployment's latency estimate decays (the EWMA's
    time constant); an idle slow deployment is tried again after a few of them."""
    near_limit: float = 0.9
    """The share of a deployment's ``rpm`` / ``tpm`` used in the last minute from which it is
    skipped while another deployment has room."""


def _number(where: str, value: Any, *, lower: float, inclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if value < lower or (value == lower and not inclusive):
        bound = ">=" if inclusive else ">"
        raise ConfigError(f"{where}: expected a number {bound} {lower:g}, got {value!r}")
    return float(value)


def _deployment(where: str, raw: Any) -> DeploymentConfig:
    if isinstance(raw, str):
        raw = {"target": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a provider/model name or a mapping with target")
    unknown = set(raw) - {"target", "weight", "rpm", "tpm"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(map(str, unknown))}")
    target = raw.get("target")
    if not isinstance(target, str) or "/" not in target:
        raise ConfigError(f"{where}.target: a provider/model name, got {target!r}")
    limits = {
        key: None if raw.get(key) is None else _number(f"{where}.{key}", raw[key], lower=0)
        for key in ("rpm", "tpm")
    }
    return DeploymentConfig(
        target,
        _number(f"{where}.weight", raw.get("weight", 1.0), lower=0),
        limits["rpm"],
        limits["tpm"],
    )


def parse_pool(route: str, raw: Mapping[str, Any]) -> PoolConfig | None:
    """The pool of route `route` (None when it has none); errors name the key."""
    where = f"routes.{route}"
    if "pool" not in raw:
        extra = sorted(POOL_KEYS & set(raw))
        if extra:
            raise ConfigError(f"{where}: {', '.join(extra)} need a pool")
        return None
    if "targets" in raw:
        raise ConfigError(f"{where}: give either targets (an ordered list) or a pool, not both")
    items = raw["pool"]
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}.pool: a non-empty list of deployments")
    deployments = tuple(_deployment(f"{where}.pool[{i}]", d) for i, d in enumerate(items))
    seen: set[str] = set()
    for d in deployments:
        if d.target in seen:
            raise ConfigError(f"{where}.pool: {d.target} is listed twice")
        seen.add(d.target)
    strategy = raw.get("strategy", PoolConfig.strategy)
    if strategy not in STRATEGIES:
        raise ConfigError(f"{where}.strategy: {strategy!r} is not one of {STRATEGIES}")
    near = _number(f"{where}.near_limit", raw.get("near_limit", PoolConfig.near_limit), lower=0)
    if near > 1:
        raise ConfigError(f"{where}.near_limit: a share of the limit, from 0 to 1, got {near!r}")
    return PoolConfig(
        deployments,
        str(strategy),
        _number(
            f"{where}.latency_decay",
            raw.get("latency_decay", PoolConfig.latency_decay),
            lower=0,
        ),
        near,
    )


def check_fallbacks(
    fallbacks: Mapping[str, Sequence[str]], route_names: Sequence[str] | None = None
) -> None:
    """Refuse routes whose ``fallbacks`` lead back to themselves through other routes."""
    routes = set(fallbacks) if route_names is None else set(route_names)

    def visit(name: str, path: tuple[str, ...]) -> None:
        for nxt in fallbacks.get(name, ()):
            if nxt not in routes:
                continue
            if nxt in path:
                cycle = " -> ".join((*path, nxt))
                raise ConfigError(f"routes.{path[0]}.fallbacks: a cycle of routes: {cycle}")
            visit(nxt, (*path, nxt))

    for name in fallbacks:
        visit(name, (name,))


def parse_fallbacks(route: str, raw: Mapping[str, Any]) -> tuple[str, ...]:
    """``routes.<route>.fallbacks``: model names tried after the route's own targets."""
    return names(raw.get("fallbacks"), f"routes.{route}.fallbacks")


MID_STREAM_POLICIES = ("never", "restart", "continue")
"""What a route may do when a target fails after output reached the caller."""


@dataclass(frozen=True)
class RouteConfig:
    """A named route: an ordered list of targets and how calls move between them."""

    name: str
    """The name callers put in ``model``."""
    targets: tuple[str, ...]
    """``provider/model`` names, tried in order; open breakers are skipped."""
    mid_stream_policy: str = "never"
    """``never`` (error with partial usage), ``restart`` or ``continue``."""
    first_token_timeout: float | None = None
    """Seconds to wait for a target's first token before the attempt fails."""
    stall_timeout: float | None = None
    """Seconds of silence between tokens before the attempt fails."""
    hedge_delay: float | None = None
    """Start the next target too after this many seconds without a first token."""
    hedge_percentile: float | None = None
    """Or: hedge after this percentile of the target's recent times to first token."""
    drop_params: tuple[str, ...] = ()
    """``/v1/chat/completions`` fields a call to this route may carry that the gateway
    accepts and drops (as ``gateway.drop_params`` does for every call)."""
    anthropic_beta: tuple[str, ...] = ()
    """Anthropic beta features (``anthropic-beta`` values) calls of this route may ask for;
    a call naming no route may ask for none."""
    pool: PoolConfig | None = None
    """Deployments balanced per call instead of an ordered list (`targets` then lists their
    targets in configured order)."""
    fallbacks: tuple[str, ...] = ()
    """Model names (aliases, other routes) tried after the targets or the pool."""
    downgrade: tuple[str, ...] = ()
    """Cheaper models, in order, a call switches to when its budget left cannot cover the
    route's worst case (instead of failing with BUDGET_EXCEEDED)."""
    steps: StepsConfig | None = None
    """Processor steps on the call's input and reply (`llmesh.services.common.step_settings`);
    None: none, and no processor call."""


def _beta_list(name: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
        raise ConfigError(f"routes.{name}.anthropic_beta: a list of beta feature names")
    return tuple(raw)


def parse_route(name: str, raw: Any) -> RouteConfig:
    """``routes.<name>``: a list of targets, or a mapping; errors name the key."""
    if isinstance(raw, list):
        raw = {"targets": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"routes.{name}: expected a list of targets or a mapping")
    known = {f for f in RouteConfig.__dataclass_fields__ if f != "name"} | {"hedge", *POOL_KEYS}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"routes.{name}: unknown keys {sorted(unknown)}")
    pool = parse_pool(name, raw)
    targets = tuple(str(t) for t in raw.get("targets") or ())
    targets = tuple(d.target for d in pool.deployments) if pool else targets
    if not targets or any("/" not in t for t in targets):
        raise ConfigError(f"routes.{name}.targets: a non-empty list of provider/model names")
    policy = str(raw.get("mid_stream_policy", field_default(RouteConfig, "mid_stream_policy")))
    if policy not in MID_STREAM_POLICIES:
        raise ConfigError(f"routes.{name}.mid_stream_policy: one of {MID_STREAM_POLICIES}")
    hedge = raw.get("hedge") or {}
    if not isinstance(hedge, Mapping) or set(hedge) - {"delay", "percentile"}:
        raise ConfigError(f"routes.{name}.hedge: a mapping with delay or percentile")

    def seconds(key: str, value: Any) -> float | None:
        if value is None:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1.0
        if number <= 0:
            raise ConfigError(f"routes.{name}.{key}: a positive number of seconds")
        return number

    percentile = hedge.get("percentile")
    if percentile is not None and not 0 < float(percentile) < 100:
        raise ConfigError(f"routes.{name}.hedge.percentile: between 0 and 100")
    return RouteConfig(
        name=name,
        targets=targets,
        mid_stream_policy=policy,
        first_token_timeout=seconds("first_token_timeout", raw.get("first_token_timeout")),
        stall_timeout=seconds("stall_timeout", raw.get("stall_timeout")),
        hedge_delay=seconds("hedge.delay", hedge.get("delay")),
        hedge_percentile=None if percentile is None else float(percentile),
        drop_params=names(raw.get("drop_params"), f"routes.{name}.drop_params"),
        anthropic_beta=_beta_list(name, raw.get("anthropic_beta")),
        pool=pool,
        fallbacks=parse_fallbacks(name, raw),
        downgrade=_downgrade(name, raw.get("downgrade")),
        steps=parse_steps(name, raw.get("steps")),
    )


def _downgrade(name: str, raw: Any) -> tuple[str, ...]:
    """``routes.<name>.downgrade``: one model name or a list of them."""
    return names([raw] if isinstance(raw, str) else raw, f"routes.{name}.downgrade")
