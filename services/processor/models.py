"""Which model names the processor counts for: the ones the mesh routes, as chat sees them.

The names come from the configuration (providers, aliases, routes), never from the
orchestrator, and resolve by the rule chat routing uses (`llmesh.services.common.model_names`):
a ``provider/model`` name of a configured provider is accepted whatever the model (the
provider decides what exists); a name of an unknown provider, or a bare name several
providers list, is MODEL_NOT_FOUND with the same message chat gives. A bare name no provider
lists is counted as it is, with its family's tokenizer (``gpt-4``).
"""

from __future__ import annotations

from collections.abc import Mapping

from llmesh.services.common.config import Config, ProviderConfig
from llmesh.services.common.errors import LlmeshError
from llmesh.services.common.model_names import resolve_model


class ModelNames:
    """Resolves model names to the ``provider/model`` whose tokenizer counts them."""

    def __init__(
        self,
        providers: Mapping[str, ProviderConfig],
        aliases: Mapping[str, str] | None = None,
        routes: Mapping[str, str] | None = None,
    ) -> None:
        self._providers = dict(providers)
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
        """The name to count `name` as; MODEL_NOT_FOUND where chat would answer it too."""
        name = self._routes.get(name, name)
        try:
            provider, model = resolve_model(name, self._providers, self._aliases)
        except LlmeshError as exc:
            if "/" in self._aliases.get(name, name) or "candidates" in exc.metadata:
                raise
            return name  # a bare family name nobody lists, e.g. ``gpt-4``: its tokenizer
        return f"{provider}/{model}"
