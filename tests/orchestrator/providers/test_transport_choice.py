"""How the registry and the configuration pick a provider's transport: ``lean`` (llmesh's own
HTTP/1.1 client, the default) or ``sdk`` (the official SDKs)."""

from __future__ import annotations

from typing import Any

import pytest

from llmesh.services.common.config import ConfigError, ProviderConfig, ResolvedProvider, load_config
from llmesh.services.orchestrator.providers import default_registry

# ---------------------------------------------------------------------------------------
# Choosing the transport


@pytest.mark.parametrize(
    ("kind", "transport", "cls", "field"),
    [
        ("openai", "lean", "LeanProvider", "max_completion_tokens"),
        ("openai-compatible", "lean", "LeanProvider", "max_tokens"),
        ("emulator", "lean", "LeanProvider", "max_tokens"),
        ("anthropic", "lean", "LeanProvider", None),
        ("openai", "sdk", "OpenAIProvider", "max_completion_tokens"),
        ("openai-compatible", "sdk", "OpenAIProvider", "max_tokens"),
        ("emulator", "sdk", "OpenAIProvider", "max_tokens"),
        ("anthropic", "sdk", "AnthropicProvider", None),
    ],
)
async def test_registry_builds_the_configured_transport(
    kind: str, transport: str, cls: str, field: str | None
) -> None:
    cfg = ProviderConfig("p", kind, base_url="http://127.0.0.1:9/v1", transport=transport)
    provider = default_registry().build(ResolvedProvider(cfg, "http://127.0.0.1:9/v1", "k", False))
    try:
        assert type(provider).__name__ == cls
        if field is not None:
            holder = getattr(provider, "_dialect", provider)
            assert (
                getattr(holder, "max_tokens_field", None)
                or getattr(holder, "_max_tokens_field", None) == field
            )
    finally:
        await provider.aclose()


def test_lean_is_the_default_transport() -> None:
    assert ProviderConfig("p", "openai").transport == "lean"
    config = load_config(env={})
    assert {p.transport for p in config.providers.values()} == {"lean"}


def test_unknown_transport_is_a_config_error(tmp_path: Any) -> None:
    path = tmp_path / "llmesh.yaml"
    path.write_text("providers:\n  openai:\n    transport: curl\n")
    with pytest.raises(ConfigError, match="transport"):
        load_config(path, env={})
    path.write_text("providers:\n  openai:\n    transport: sdk\n")
    assert load_config(path, env={}).providers["openai"].transport == "sdk"


def test_registry_refuses_an_unknown_transport() -> None:
    cfg = ProviderConfig("p", "openai", transport="curl")
    with pytest.raises(ValueError, match="curl"):
        default_registry().build(ResolvedProvider(cfg, "http://127.0.0.1:9/v1", "k", False))
