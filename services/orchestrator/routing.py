"""Model names to provider targets: routes, aliases, ``provider/model`` and bare model names.

`Router.route` resolves a call once, at the top of the call path, into a `RoutedCall`: its
ordered targets (the route's, then each fallback's) and the policy it runs with. Nothing
below it resolves a model name again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from llmesh.services.common.config import ProviderConfig, RouteConfig
from llmesh.services.common.errors import invalid
from llmesh.services.common.model_names import resolve_model
from llmesh.services.core.call import Call, RoutedCall
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.ids import new_request_id
from llmesh.services.core.policy import CallOptions, MidStreamPolicy, Policy
from llmesh.services.core.target import Target
from llmesh.services.core.trail import Trail
from llmesh.services.orchestrator.model_catalog import ModelCatalog
from llmesh.services.orchestrator.model_fit import able_targets, fitting_targets

R = TypeVar("R")


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
        catalog: ModelCatalog | None = None,
    ) -> None:
        self._catalog = catalog or ModelCatalog()
        self._providers = dict(providers)
        self._kinds = {name: p.kind for name, p in self._providers.items()}
        self._aliases = dict(aliases)
        self._routes = dict(routes or {})
        for route in self._routes.values():  # a bad target fails at start, not per call
            for target in (*route.targets, *route.downgrade):
                self.resolve(target)

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
        targets, route = self.plan(call.model)
        if isinstance(call.request, ChatRequest) and call.request.anthropic_beta:
            _check_betas(call.request.anthropic_beta, route)
        for name in call.fallbacks:
            targets.extend(self.plan(name)[0])
        trail = trail or Trail(started=time.monotonic())
        cheaper = [self.resolve(t) for t in route.downgrade] if route is not None else []
        if isinstance(call.request, ChatRequest):
            request, kinds = call.request, self._kinds
            targets = fitting_targets(targets, self._catalog, request, trail, time.monotonic, kinds)
            cheaper = able_targets(cheaper, self._catalog, request, kinds)
        return RoutedCall(
            call,
            tuple(targets),
            effective_policy(route, call.options),
            request_id or new_request_id(),
            trail,
            timeout,
            downgrade=tuple(cheaper),
        )

    def plan(self, name: str) -> tuple[list[Target], RouteConfig | None]:
        """The ordered targets for a model name, and its route when it names one."""
        route = self._routes.get(name)
        if route is not None:
            return [self.resolve(t) for t in route.targets], route
        return [self.resolve(name)], None

    def resolve(self, name: str) -> Target:
        """The target for a model name; MODEL_NOT_FOUND when nothing or several match."""
        return Target(*resolve_model(name, self._providers, self._aliases))

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
            out.append(ModelEntry(route.name, first, alias_for=" > ".join(route.targets)))
        return sorted(out, key=lambda e: e.name)


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
