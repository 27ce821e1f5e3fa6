"""Model names to provider targets: routes, aliases, ``provider/model`` and bare model names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import ProviderConfig, RouteConfig
from services.common.model_names import resolve_model


@dataclass(frozen=True, slots=True)
class Target:
    """One provider model a call can go to."""

    provider: str
    model: str

    @property
    def name(self) -> str:
        """The ``provider/model`` name."""
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A routable name as listed by ListModels."""

    name: str
    target: Target
    alias_for: str = ""


class Router:
    """Resolves model names.

    Routes first (in `plan`), then `services.common.model_names.resolve_model`: aliases,
    ``provider/model``, and a bare model name listed by exactly one provider.
    """

    def __init__(
        self,
        providers: Mapping[str, ProviderConfig],
        aliases: Mapping[str, str],
        routes: Mapping[str, RouteConfig] | None = None,
    ) -> None:
        self._providers = dict(providers)
        self._aliases = dict(aliases)
        self._routes = dict(routes or {})
        for route in self._routes.values():  # a bad target fails at start, not per call
            for target in route.targets:
                self.resolve(target)

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
