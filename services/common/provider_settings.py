"""The ``providers`` section: each provider's settings, the defaults that need no file, and
where a provider's requests go once the environment is read (`resolve_provider`).

Part of the configuration (`llmesh.services.common.config`, which re-exports these names).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmesh.services.common.config_fields import ConfigError
from llmesh.services.common.media_settings import MEDIA_URL_MODES

__all__ = [
    "LOCAL_MODEL_PACKAGES",
    "PROVIDER_KINDS",
    "STRUCTURED_OUTPUT_MODES",
    "EmulatorConfig",
    "ProviderConfig",
    "ResolvedProvider",
    "default_providers",
    "field_default",
    "parse_provider",
    "resolve_provider",
]

PROVIDER_KINDS = ("openai", "anthropic", "openai-compatible", "emulator", "local")
"""The adapter kinds a provider entry may name."""


STRUCTURED_OUTPUT_MODES = ("auto", "native", "tool")
"""How an anthropic provider sends ``response_format`` (`ProviderConfig.structured_output`)."""


@dataclass(frozen=True)
class ProviderConfig:
    """One upstream provider: which adapter speaks to it, where, and with what key."""

    name: str
    """The provider's name: the part of a model name before the slash."""
    kind: str
    """The adapter: ``openai``, ``anthropic``, ``openai-compatible``, ``emulator`` or ``local``
    (embedding models run in-process; no URL, no key)."""
    base_url: str | None = None
    """The API base URL; for openai/anthropic, ``$OPENAI_BASE_URL`` / ``$ANTHROPIC_BASE_URL``."""
    api_key: str | None = field(default=None, repr=False)
    """The API key; for openai/anthropic, ``$OPENAI_API_KEY`` / ``$ANTHROPIC_API_KEY``
    (left out of the repr, as are `headers`, so a logged configuration shows no secret)."""
    api_key_env: str | None = None
    """An environment variable to read the key from, instead of writing it in the file."""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Extra HTTP headers sent with every upstream request."""
    models: tuple[str, ...] = ()
    """Models listed by ListModels; any model name is routed regardless."""
    timeout: float = 600.0
    """Upstream timeout in seconds when the caller sets no deadline."""
    connect_timeout: float = 5.0
    """Seconds to wait for an upstream connection."""
    max_connections: int = 1000
    """Size of the provider's shared connection pool."""
    transport: str = "lean"
    """What carries the provider's wire format: ``lean`` (its own HTTP/1.1 client and orjson,
    about ten times less CPU per call and per streamed token) or ``sdk`` (the official
    `openai` / `anthropic` SDK, the reference the lean transport is tested against)."""
    max_batch: int = 32
    """``local`` only: the most texts embedded in one model call; concurrent calls are
    gathered up to this many."""
    batch_wait: float = 0.002
    """``local`` only: seconds a model call waits after a call arrives for others to join it."""
    structured_output: str = "auto"
    """``anthropic`` only: how ``response_format`` is sent: ``auto`` (Anthropic's native
    structured output for the models that have it, else a forced tool call), ``native``
    (native for every model) or ``tool`` (always the forced tool)."""
    media_urls: str = "pass"
    """Image and document URLs: ``pass`` them on where the provider's API takes a URL (images
    everywhere, documents at Anthropic; OpenAI-style documents are always fetched) or
    ``fetch`` every one (servers that want bytes, e.g. Ollama). Fetching needs `media_fetch`."""


@dataclass(frozen=True)
class EmulatorConfig:
    """The built-in emulator's listening address."""

    host: str = "127.0.0.1"
    """Interface to bind."""
    port: int = 8090
    """TCP port to bind."""

    @property
    def url(self) -> str:
        """The emulator's base URL (no path)."""
        return f"http://{self.host}:{self.port}"


def default_providers(emulator: EmulatorConfig) -> dict[str, ProviderConfig]:
    return {
        "openai": ProviderConfig(
            "openai",
            "openai",
            models=(
                "gpt-4o-mini",
                "gpt-4o",
                "gpt-4.1-mini",
                "o4-mini",
                "text-embedding-3-small",
                "text-embedding-3-large",
            ),
        ),
        "anthropic": ProviderConfig(
            "anthropic",
            "anthropic",
            models=("claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-6"),
        ),
        "emulator": ProviderConfig("emulator", "emulator", models=("echo",)),
        **_local_provider(),
    }


LOCAL_MODEL_PACKAGES = {"wordllama-l2-supercat": "wordllama"}
"""The ``local`` kind's models, by the installed package that ships each one's weights."""


def _local_provider() -> dict[str, ProviderConfig]:
    """The ``local`` provider, with the models whose package is installed (none: no provider).

    Found without importing the packages: loading the configuration stays cheap.
    """
    models = tuple(
        model
        for model, package in LOCAL_MODEL_PACKAGES.items()
        if importlib.util.find_spec(package) is not None
    )
    return {"local": ProviderConfig("local", "local", models=models)} if models else {}


def field_default(cls: type[Any], name: str) -> Any:
    """The default declared on a dataclass field (not a factory's)."""
    return cls.__dataclass_fields__[name].default


def parse_provider(name: str, raw: Any) -> ProviderConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"providers.{name}: expected a mapping")
    known = {f for f in ProviderConfig.__dataclass_fields__ if f != "name"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"providers.{name}: unknown keys {sorted(unknown)}")
    kind = raw.get("kind", name if name in PROVIDER_KINDS else "openai-compatible")
    if kind not in PROVIDER_KINDS:
        raise ConfigError(f"providers.{name}.kind: {kind!r} is not one of {PROVIDER_KINDS}")
    if kind == "openai-compatible" and not raw.get("base_url"):
        raise ConfigError(f"providers.{name}.base_url: required for openai-compatible")
    for key, allowed in (
        ("transport", ("lean", "sdk")),
        ("structured_output", STRUCTURED_OUTPUT_MODES),
        ("media_urls", MEDIA_URL_MODES),
    ):
        value = raw.get(key, field_default(ProviderConfig, key))
        if value not in allowed:
            raise ConfigError(f"providers.{name}.{key}: {value!r} is not one of {allowed}")
    for key, minimum in (("max_batch", 1), ("batch_wait", 0)):
        value = raw.get(key, minimum)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise ConfigError(f"providers.{name}.{key}: expected a number >= {minimum}")
    args = dict(raw)
    args["kind"] = kind
    args["models"] = tuple(args.get("models", ()))
    args["headers"] = dict(args.get("headers", {}))
    return ProviderConfig(name=name, **args)


@dataclass(frozen=True)
class ResolvedProvider:
    """A provider with its endpoint and key settled from config, environment or defaults."""

    config: ProviderConfig
    base_url: str
    api_key: str = field(repr=False)
    uses_emulator: bool
    """True when no credentials were found and the built-in emulator stands in."""


_SDK_ENV = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", ""),
}


def resolve_provider(
    provider: ProviderConfig, emulator: EmulatorConfig, env: Mapping[str, str] | None = None
) -> ResolvedProvider:
    """Settle where a provider's requests go and with which key.

    openai and anthropic take ``*_API_KEY`` / ``*_BASE_URL`` from the environment when the
    file gives none; with neither a key nor a base URL they go to the emulator, so the mesh
    works with no configuration at all.
    """
    env = os.environ if env is None else env
    key = provider.api_key or (env.get(provider.api_key_env) if provider.api_key_env else None)
    base = provider.base_url
    if provider.kind in _SDK_ENV:
        key_var, url_var, emu_suffix = _SDK_ENV[provider.kind]
        key = key or env.get(key_var)
        base = base or env.get(url_var)
        if not key and not base:
            return ResolvedProvider(provider, emulator.url + emu_suffix, "emulator", True)
        default = (
            "https://api.openai.com/v1"
            if provider.kind == "openai"
            else "https://api.anthropic.com"
        )
        return ResolvedProvider(provider, base or default, key or "unused", False)
    if provider.kind == "local":
        return ResolvedProvider(provider, "in-process", "unused", False)
    if provider.kind == "emulator":
        return ResolvedProvider(provider, base or emulator.url + "/v1", key or "emulator", True)
    assert base is not None  # checked when loading
    return ResolvedProvider(provider, base, key or "unused", False)
