"""Provider adapters behind one interface, found through a registry by kind."""

from services.orchestrator.providers.base import Provider, ProviderFactory, ProviderRegistry

__all__ = ["Provider", "ProviderFactory", "ProviderRegistry", "default_registry"]


def default_registry() -> ProviderRegistry:
    """A registry of the built-in adapter kinds (imports the SDKs when called, not before)."""
    from services.orchestrator.providers import anthropic_sdk, openai_sdk

    registry = ProviderRegistry()
    registry.register("openai", openai_sdk.openai_factory)
    registry.register("openai-compatible", openai_sdk.compatible_factory)
    registry.register("emulator", openai_sdk.compatible_factory)
    registry.register("anthropic", anthropic_sdk.factory)
    return registry
