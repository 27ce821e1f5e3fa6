"""Which model names the processor counts for: the ones the mesh routes, as chat sees them.

The names come from the configuration (providers, aliases, routes), never from the
orchestrator. A ``provider/model`` name of a configured provider is accepted whatever the
model (the provider decides what exists); a name of an unknown provider is MODEL_NOT_FOUND
with the same message chat gives. A bare name that is neither an alias nor a route is
counted as it is, with its family's tokenizer (``gpt-4o``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.common.config import Config
from services.common.errors import LlmeshError, Reason


class ModelNames:
    """Resolves model names to the ``provider/model`` whose tokenizer counts them."""

    def __init__(
        self,
        providers: Iterable[str],
        aliases: Mapping[str, str] | None = None,
        routes: Mapping[str, str] | None = None,
    ) -> None:
        self._providers = frozenset(providers)
        self._aliases = dict(aliases or {})
        self._routes = dict(routes or {})  # route name -> its first target

    @classmethod
    def from_config(cls, config: Config) -> ModelNames:
        """The names a mesh configuration routes."""
        return cls(
            config.providers,
            config.aliases,
            {name: route.targets[0] for name, route in config.routes.items()},
        )

    def resolve(self, name: str) -> str:
        """The name to count `name` as; MODEL_NOT_FOUND for a provider nobody configured."""
        seen = name
        name = self._routes.get(name) or self._aliases.get(name) or name
        provider, sep, model = name.partition("/")
        if not sep:
            return name
        if not provider or not model:
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
        return name
