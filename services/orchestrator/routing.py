"""Model names to provider targets: ``provider/model`` names and configured aliases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import ProviderConfig, RouteConfig
from services.common.errors import LlmeshError, Reason


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
    """Resolves model names; aliases first, then ``provider/model`` (the model may hold slashes)."""

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
        """The target for a model name; MODEL_NOT_FOUND when nothing matches."""
        seen = name
        if name in self._aliases:
            name = self._aliases[name]
        provider, sep, model = name.partition("/")
        if not sep or not model or not provider:
            raise LlmeshError(
                Reason.MODEL_NOT_FOUND,
                f"model {seen!r} is neither an alias nor a provider/model name",
                metadata={"model": seen},
            )
        if provider not in self._providers:
            known = ", ".join(sorted(self._providers))
            raise LlmeshError(
                Reason.MODEL_NOT_FOUND,
                f"model {seen!r}: unknown provider {provider!r} (configured: {known})",
                metadata={"model": seen, "provider": provider},
            )
        return Target(provider, model)

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
