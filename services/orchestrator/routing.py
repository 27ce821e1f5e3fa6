"""Model names to provider targets: routes, aliases, ``provider/model`` and bare model names.

`Router.route` resolves a call once, at the top of the call path, into a `RoutedCall`: its
ordered targets (the route's, then each fallback's) and the policy it runs with. Nothing
below it resolves a model name again. A route with a pool has its deployments ordered for
this call by the pool's strategy (`pools.Balancer`): the order, and the deployments left
out, are noted in the call's trail; the rest of the path walks that order as any other.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from llmesh.services.common.config import ProviderConfig, RouteConfig
from llmesh.services.common.errors import Reason, invalid
from llmesh.services.common.model_names import resolve_model
from llmesh.services.common.step_settings import StepsConfig
from llmesh.services.core.call import Call, RoutedCall
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.ids import new_request_id
from llmesh.services.core.policy import CallOptions, MidStreamPolicy, Policy
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome, Trail
from llmesh.services.orchestrator.estimate import estimate_input_tokens
from llmesh.services.orchestrator.model_catalog import ModelCatalog
from llmesh.services.orchestrator.model_fit import able_targets, fitting_targets
from llmesh.services.orchestrator.pools import Balancer, DeploymentStats

R = TypeVar("R")

_NONE: frozenset[Target] = frozenset()


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A routable name as listed by ListModels."""

    name: str
    target: Target
    alias_for: str = ""


class Router:
    """Resolves model names.

    Routes first (in `plan`), then `llmesh.services.common.model_names.resolve_model`: aliases,
    ``provider/model``, and a bare model name listed by exactly one provider.
    """

    def __init__(
        self,
        providers: Mapping[str, ProviderConfig],
        aliases: Mapping[str, str],
        routes: Mapping[str, RouteConfig] | None = None,
        balancer: Balancer | None = None,
        catalog: ModelCatalog | None = None,
        tenant_steps: Mapping[str, StepsConfig] | None = None,
    ) -> None:
        """`balancer` orders pools (None: one of its own, on figures no engine feeds);
        `catalog` says what models can do (None: the bundled one); `tenant_steps`: each
        tenant's processor steps (``tenants.<tenant>.steps``)."""
        self._catalog = catalog or ModelCatalog()
        self._providers = dict(providers)
        self._kinds = {name: p.kind for name, p in self._providers.items()}
        self._aliases = dict(aliases)
        self._routes = dict(routes or {})
        self._resolved: dict[str, Target] = {}
        """Model names already resolved (they depend only on this router's configuration)."""
        self.balancer = balancer or Balancer(DeploymentStats())
        for route in self._routes.values():  # a bad target fails at start, not per call
            for target in (*route.targets, *route.downgrade):
                self.resolve(target)
            for name in route.fallbacks:
                if name not in self._routes:
                    self.resolve(name)
        self._tenant_steps = dict(tenant_steps or {})
        for steps in (
            *(r.steps for r in self._routes.values() if r.steps is not None),
            *self._tenant_steps.values(),
        ):
            if steps.screen.route_to:
                self.plan(steps.screen.route_to)
            if steps.fit.larger_model is not None:
                self.resolve(steps.fit.larger_model)
            if steps.fit.summary_model is not None:
                self.plan(steps.fit.summary_model)

    def kind(self, provider: str) -> str:
        """The kind (wire format) of the configured provider `provider`; empty: unknown."""
        return self._kinds.get(provider, "")

    @property
    def catalog(self) -> ModelCatalog:
        """What the routed models can do."""
        return self._catalog

    def steps(self, name: str) -> StepsConfig | None:
        """The processor steps of route `name` (None: not a route, or a route without)."""
        route = self._routes.get(name)
        return None if route is None else route.steps

    def tenant_steps(self, tenant: str) -> StepsConfig | None:
        """The processor steps of `tenant` for every call it makes (None: none)."""
        return self._tenant_steps.get(tenant)

    def pooled(self) -> set[str]:
        """The targets of every pool's deployments."""
        return {t for r in self._routes.values() if r.pool is not None for t in r.targets}

    def route(
        self,
        call: Call[R],
        *,
        request_id: str | None = None,
        trail: Trail | None = None,
        timeout: float | None = None,
    ) -> RoutedCall[R]:
        """The call resolved into its ordered targets (route, then fallbacks) and policy.

        Raises MODEL_NOT_FOUND for any unknown name, and INVALID_REQUEST when no target's
        model can serve a chat call (`model_fit`), before anything is sent.
        """
        trail = trail or Trail(started=time.monotonic())
        failover: set[Target] = set()
        targets, route = self._plan(call.model, call.request, trail, failover, ())
        if isinstance(call.request, ChatRequest) and call.request.anthropic_beta:
            _check_betas(call.request.anthropic_beta, route)
        for name in call.fallbacks:
            targets.extend(self._plan(name, call.request, trail, failover, ())[0])
        cheaper = [self.resolve(t) for t in route.downgrade] if route is not None else []
        if isinstance(call.request, ChatRequest):
            request, kinds = call.request, self._kinds
            fitted = route is not None and route.steps is not None and "fit" in route.steps.pre
            targets = fitting_targets(
                targets, self._catalog, request, trail, time.monotonic, kinds, fitted=fitted
            )
            if cheaper:  # a route with `downgrade`
                cheaper = able_targets(cheaper, self._catalog, request, kinds)
        return RoutedCall(
            call,
            tuple(targets),
            effective_policy(route, call.options),
            request_id or new_request_id(),
            trail,
            timeout,
            failover=frozenset(failover) if failover else _NONE,
            downgrade=tuple(cheaper),
        )

    def plan(self, name: str) -> tuple[list[Target], RouteConfig | None]:
        """The ordered targets for a model name (a route's fallbacks included), and its
        route when it names one."""
        return self._plan(name, None, None, set(), ())

    def _plan(
        self,
        name: str,
        request: object,
        trail: Trail | None,
        failover: set[Target],
        seen: tuple[str, ...],
    ) -> tuple[list[Target], RouteConfig | None]:
        """`plan`, noting a pool's choice in `trail` and its deployments that fail over to
        the next one (all but its last) in `failover`."""
        route = self._routes.get(name)
        if route is None:
            return [self.resolve(name)], None
        targets = [self.resolve(t) for t in route.targets]
        if route.pool is not None:
            pool = route.pool
            tpm = any(d.tpm is not None for d in pool.deployments)
            tokens = estimate_input_tokens(request) if tpm and request is not None else 0
            choice = self.balancer.order(pool, targets, tokens=tokens)
            targets = list(choice.targets)
            failover.update(targets[:-1])
            if trail is not None:
                now = time.monotonic()
                for skip in choice.skipped:
                    record = trail.add(AttemptRecord(skip.target, now, pick=skip.why))
                    record.finish(Outcome.SKIPPED, now, Reason.RATE_LIMIT_EXCEEDED)
                if trail.picks is None:
                    trail.picks = {}
                trail.picks.update(zip(choice.targets, choice.notes, strict=True))
        for fallback in route.fallbacks:
            if fallback not in seen:  # cycles are refused when the config loads
                more, _ = self._plan(fallback, request, trail, failover, (*seen, name))
                targets.extend(more)
        return targets, route

    def resolve(self, name: str) -> Target:
        """The target for a model name; MODEL_NOT_FOUND when nothing or several match."""
        target = self._resolved.get(name)
        if target is None:
            target = Target(*resolve_model(name, self._providers, self._aliases))
            if len(self._resolved) >= _RESOLVED:  # names callers make up: keep it bounded
                self._resolved.clear()
            self._resolved[name] = target
        return target

    def entries(self) -> list[ModelEntry]:
        """Every listed model and alias, sorted by name."""
        out = [
            ModelEntry(f"{p.name}/{m}", Target(p.name, m))
            for p in self._providers.values()
            for m in p.models
        ]
        for alias, target in self._aliases.items():
            out.append(ModelEntry(alias, self.resolve(target), alias_for=target))
        for route in self._routes.values():
            first = self.resolve(route.targets[0])
            listed = (" | " if route.pool is not None else " > ").join(route.targets)
            listed += "".join(f" > {name}" for name in route.fallbacks)
            out.append(ModelEntry(route.name, first, alias_for=listed))
        return sorted(out, key=lambda e: e.name)


_RESOLVED = 4096
"""Resolved model names a router remembers; past it the memory is emptied."""


def _check_betas(betas: tuple[str, ...], route: RouteConfig | None) -> None:
    """INVALID_REQUEST naming the first beta feature the call's route does not allow."""
    allowed = route.anthropic_beta if route is not None else ()
    for beta in betas:
        if beta not in allowed:
            where = f"route {route.name!r}" if route is not None else "a call naming no route"
            raise invalid(
                "anthropic_beta",
                f"the Anthropic beta {beta!r} (anthropic-beta header) is not allowed for "
                f"{where}; routes.<name>.anthropic_beta lists those allowed",
            )


def effective_policy(route: RouteConfig | None, options: CallOptions) -> Policy:
    """The request's options where given, else the route's, else the defaults."""
    mid = options.mid_stream or (
        MidStreamPolicy(route.mid_stream_policy) if route else MidStreamPolicy.NEVER
    )
    hedge_delay = options.hedge_delay if options.hedge_delay is not None else None
    hedge_pct = options.hedge_percentile
    if options.hedge is False:
        hedge_delay = hedge_pct = None
    elif hedge_delay is None and hedge_pct is None and route is not None:
        hedge_delay, hedge_pct = route.hedge_delay, route.hedge_percentile
    if options.hedge and hedge_delay is None and hedge_pct is None:
        hedge_pct = 95.0
    return Policy(
        mid_stream=mid,
        first_token_timeout=options.first_token_timeout
        if options.first_token_timeout is not None
        else (route.first_token_timeout if route else None),
        stall_timeout=options.stall_timeout
        if options.stall_timeout is not None
        else (route.stall_timeout if route else None),
        hedge_delay=hedge_delay,
        hedge_percentile=hedge_pct,
    )
