"""Model names to provider targets: routes, aliases, ``provider/model`` and bare model names."""

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
    """Resolves model names.

    Routes first (in `plan`), then aliases, then ``provider/model`` (the model may hold
    slashes), then a bare model name such as ``gpt-4o-mini``: it resolves when exactly one
    provider lists it in its ``models``, and is MODEL_NOT_FOUND naming the candidates when
    several do.
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
        seen = name
        if name in self._aliases:
            name = self._aliases[name]
        provider, sep, model = name.partition("/")
        if sep and model and provider in self._providers:
            return Target(provider, model)
        listed = sorted(p.name for p in self._providers.values() if name in p.models)
        if len(listed) == 1:
            return Target(listed[0], name)
        if listed:
            candidates = [f"{p}/{name}" for p in listed]
            raise LlmeshError(
                Reason.MODEL_NOT_FOUND,
                f"model {seen!r} is listed by several providers; name one of: "
                + ", ".join(candidates),
                metadata={"model": seen, "candidates": ",".join(candidates)},
            )
        if not sep or not model or not provider:
            raise LlmeshError(
                Reason.MODEL_NOT_FOUND,
                f"model {seen!r} is neither an alias, a provider/model name, nor a model "
                "listed by a provider",
                metadata={"model": seen},
            )
        known = ", ".join(sorted(self._providers))
        raise LlmeshError(
            Reason.MODEL_NOT_FOUND,
            f"model {seen!r}: unknown provider {provider!r} (configured: {known})",
            metadata={"model": seen, "provider": provider},
        )

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
