"""Provider adapters behind one interface, found through a registry by kind."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from services.common.config import ResolvedProvider
from services.orchestrator.providers.base import Provider, ProviderFactory, ProviderRegistry

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
}
"""(module in this package, factory) by kind, then by ``ProviderConfig.transport``."""


def _by_transport(kind: str, factories: Mapping[str, tuple[str, str]]) -> ProviderFactory:
    """A factory for `kind` that builds the adapter of the provider's configured transport.

    The adapter's module is imported when a provider first needs it, so a process whose
    providers all use the lean transport never loads the SDKs.
    """

    def build(resolved: ResolvedProvider) -> Provider:
        transport = resolved.config.transport
        try:
            module, name = factories[transport]
        except KeyError:
            raise ValueError(f"provider kind {kind!r} has no {transport!r} transport") from None
        factory: ProviderFactory = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        return factory(resolved)

    return build


def default_registry() -> ProviderRegistry:
    """A registry of the built-in adapter kinds, each over the lean transport or the SDK."""
    registry = ProviderRegistry()
    for kind, factories in _FACTORIES.items():
        registry.register(kind, _by_transport(kind, factories))
    return registry
