"""Provider adapters behind one interface, found through a registry by kind."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from llmesh.services.common.config import ResolvedProvider
from llmesh.services.orchestrator.providers.base import Provider, ProviderFactory, ProviderRegistry
from llmesh.services.transport import Transport

__all__ = ["Provider", "ProviderFactory", "ProviderRegistry", "default_registry"]

_FACTORIES: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "openai": {
        "lean": ("lean", "openai_factory"),
        "sdk": ("openai_sdk", "openai_factory"),
    },
    "openai-compatible": {
        "lean": ("lean", "compatible_factory"),
        "sdk": ("openai_sdk", "compatible_factory"),
    },
    "emulator": {
        "lean": ("lean", "compatible_factory"),
        "sdk": ("openai_sdk", "compatible_factory"),
    },
    "anthropic": {
        "lean": ("lean", "anthropic_factory"),
        "sdk": ("anthropic_sdk", "factory"),
    },
    "local": {"lean": ("local", "factory"), "sdk": ("local", "factory")},
}
"""(module in this package, factory) by kind, then by ``ProviderConfig.transport``."""


def _by_transport(
    kind: str, factories: Mapping[str, tuple[str, str]], given: Mapping[str, Transport]
) -> ProviderFactory:
    """A factory for `kind` that builds the adapter of the provider's configured transport.

    The adapter's module is imported when a provider first needs it, so a process whose
    providers all use the lean transport never loads the SDKs. A provider named in `given`
    gets that transport instead of a connection pool of its own (lean adapters only).
    """

    def build(resolved: ResolvedProvider) -> Provider:
        cfg = resolved.config
        try:
            module, name = factories[cfg.transport]
        except KeyError:
            raise ValueError(f"provider kind {kind!r} has no {cfg.transport!r} transport") from None
        factory = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        if cfg.name in given:
            if cfg.transport != "lean":
                raise ValueError(f"provider {cfg.name!r} uses the SDK: it takes no transport")
            provider: Provider = factory(resolved, given[cfg.name])
            return provider
        built: Provider = factory(resolved)
        return built

    return build


def default_registry(transports: Mapping[str, Transport] | None = None) -> ProviderRegistry:
    """A registry of the built-in adapter kinds, each over the lean transport or the SDK.

    `transports` maps provider names to the transport their lean adapter sends through
    (tests pass a `llmesh.services.transport.MockTransport`); the others build their own pool.
    """
    given = dict(transports or {})
    registry = ProviderRegistry()
    for kind, factories in _FACTORIES.items():
        registry.register(kind, _by_transport(kind, factories, given))
    return registry
