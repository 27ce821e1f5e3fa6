"""llmesh configuration: one YAML file, environment overrides, defaults that need nothing.

The file is found at ``--config``, else ``$LLMESH_CONFIG``, else ``llmesh.yaml`` in the
working directory if it exists; with none, the defaults below apply and every provider
without credentials is served by the built-in emulator. `llmesh.example.yaml` documents
every key.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml
from platformdirs import user_data_path

from llmesh.services.common.config_fields import ConfigError, FieldError, build, flag, names
from llmesh.services.common.media_settings import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MEDIA_URL_MODES,
    MediaFetchConfig,
    PartLimits,
    limits_from_mapping,
)
from llmesh.services.common.policy_settings import PolicyConfig
from llmesh.services.common.resilience_settings import Resilience

__all__ = [
    "LOCAL_MODEL_PACKAGES",
    "MID_STREAM_POLICIES",
    "PROVIDER_KINDS",
    "STRUCTURED_OUTPUT_MODES",
    "Config",
    "ConfigError",
    "EmulatorConfig",
    "MediaFetchConfig",
    "PartLimits",
    "PolicyConfig",
    "ProviderConfig",
    "Resilience",
    "ResolvedProvider",
    "RouteConfig",
    "default_database_url",
    "load_config",
    "resolve_provider",
    "with_overrides",
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
    api_key: str | None = None
    """The API key; for openai/anthropic, ``$OPENAI_API_KEY`` / ``$ANTHROPIC_API_KEY``."""
    api_key_env: str | None = None
    """An environment variable to read the key from, instead of writing it in the file."""
    headers: Mapping[str, str] = field(default_factory=dict)
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


MID_STREAM_POLICIES = ("never", "restart", "continue")
"""What a route may do when a target fails after output reached the caller."""


@dataclass(frozen=True)
class RouteConfig:
    """A named route: an ordered list of targets and how calls move between them."""

    name: str
    """The name callers put in ``model``."""
    targets: tuple[str, ...]
    """``provider/model`` names, tried in order; open breakers are skipped."""
    mid_stream_policy: str = "never"
    """``never`` (error with partial usage), ``restart`` or ``continue``."""
    first_token_timeout: float | None = None
    """Seconds to wait for a target's first token before the attempt fails."""
    stall_timeout: float | None = None
    """Seconds of silence between tokens before the attempt fails."""
    hedge_delay: float | None = None
    """Start the next target too after this many seconds without a first token."""
    hedge_percentile: float | None = None
    """Or: hedge after this percentile of the target's recent times to first token."""
    anthropic_beta: tuple[str, ...] = ()
    """Anthropic beta features (``anthropic-beta`` values) calls of this route may ask for;
    a call naming no route may ask for none."""


def default_database_url() -> str:
    """The SQLite database in the per-user data directory, the same from any directory.

    ``sqlite:////home/me/.local/share/llmesh/llmesh.db`` on Linux (``$XDG_DATA_HOME`` is
    honoured), ``~/Library/Application Support/llmesh/llmesh.db`` on macOS,
    ``%LOCALAPPDATA%\\llmesh\\llmesh.db`` on Windows. The services create it on first use.
    """
    return f"sqlite:///{user_data_path('llmesh', appauthor=False) / 'llmesh.db'}"


@dataclass(frozen=True)
class Config:
    """The whole llmesh configuration."""

    orchestrator_address: str = "127.0.0.1:50051"
    """Where the orchestrator's gRPC server listens."""
    processor_address: str = "127.0.0.1:50052"
    """Where the processor's gRPC server listens."""
    gateway_host: str = "127.0.0.1"
    """Interface the HTTP gateway binds."""
    gateway_port: int = 8080
    """TCP port the HTTP gateway binds."""
    gateway_drop_params: tuple[str, ...] = ()
    """Top-level ``/v1/chat/completions`` body fields the gateway accepts and drops instead of
    refusing with a 400 (``gateway.drop_params``); fields llmesh honours are never dropped."""
    emulator: EmulatorConfig = field(default_factory=EmulatorConfig)
    """The built-in emulator."""
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    """Providers by name; openai, anthropic and emulator are always present, and ``local``
    when a package shipping a local embedding model is installed (the `local` extra)."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Short model names mapped to ``provider/model`` names."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """The largest chat request accepted, in bytes of serialized request; the gRPC message
    limits and the gateway's body limit are derived from it."""
    part_limits: PartLimits = field(default_factory=PartLimits)
    """The largest image, document and audio part (``limits.max_*_bytes``)."""
    media_fetch: MediaFetchConfig = field(default_factory=MediaFetchConfig)
    """Fetching part URLs for providers that need bytes (off unless hosts are allowed)."""
    routes: Mapping[str, RouteConfig] = field(default_factory=dict)
    """Named routes: ordered targets with fallback, timeout and hedging settings."""
    resilience: Resilience = field(default_factory=Resilience)
    """Breakers, retries, the retry budget and queues (the ``resilience`` section)."""
    shutdown_grace: float = 10.0
    """Seconds in-flight calls may run on after SIGTERM before they are cancelled."""
    database_url: str = field(default_factory=default_database_url)
    """Where the usage ledger and API keys live: ``sqlite:///path`` or ``postgresql://...``;
    by default ``llmesh.db`` in the per-user data directory (see `default_database_url`)."""
    ledger_flush_interval: float = 0.05
    """Seconds between ledger writes; at most this much usage is lost on a crash."""
    allow_unauthenticated: bool = False
    """Serve a non-loopback address without API keys (refused unless set)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """Budgets, rate limits, the response cache and price overrides (the top-level
    ``budgets``, ``rate_limits``, ``cache`` and ``prices`` sections)."""
    telemetry: Mapping[str, Any] = field(default_factory=dict)
    """The ``telemetry`` section as written (metrics, logs, traces), read by each service's
    telemetry settings (`llmesh.services.telemetry`) when it starts."""


def _default_providers(emulator: EmulatorConfig) -> dict[str, ProviderConfig]:
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


def _field_default(cls: type[Any], name: str) -> Any:
    """The default declared on a dataclass field (not a factory's)."""
    return cls.__dataclass_fields__[name].default


def _provider(name: str, raw: Any) -> ProviderConfig:
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
        value = raw.get(key, _field_default(ProviderConfig, key))
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


def _beta_list(name: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
        raise ConfigError(f"routes.{name}.anthropic_beta: a list of beta feature names")
    return tuple(raw)


def _route(name: str, raw: Any) -> RouteConfig:
    if isinstance(raw, list):
        raw = {"targets": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"routes.{name}: expected a list of targets or a mapping")
    known = {f for f in RouteConfig.__dataclass_fields__ if f != "name"} | {"hedge"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"routes.{name}: unknown keys {sorted(unknown)}")
    targets = tuple(str(t) for t in raw.get("targets") or ())
    if not targets or any("/" not in t for t in targets):
        raise ConfigError(f"routes.{name}.targets: a non-empty list of provider/model names")
    policy = str(raw.get("mid_stream_policy", _field_default(RouteConfig, "mid_stream_policy")))
    if policy not in MID_STREAM_POLICIES:
        raise ConfigError(f"routes.{name}.mid_stream_policy: one of {MID_STREAM_POLICIES}")
    hedge = raw.get("hedge") or {}
    if not isinstance(hedge, Mapping) or set(hedge) - {"delay", "percentile"}:
        raise ConfigError(f"routes.{name}.hedge: a mapping with delay or percentile")

    def seconds(key: str, value: Any) -> float | None:
        if value is None:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1.0
        if number <= 0:
            raise ConfigError(f"routes.{name}.{key}: a positive number of seconds")
        return number

    percentile = hedge.get("percentile")
    if percentile is not None and not 0 < float(percentile) < 100:
        raise ConfigError(f"routes.{name}.hedge.percentile: between 0 and 100")
    return RouteConfig(
        name=name,
        targets=targets,
        mid_stream_policy=policy,
        first_token_timeout=seconds("first_token_timeout", raw.get("first_token_timeout")),
        stall_timeout=seconds("stall_timeout", raw.get("stall_timeout")),
        hedge_delay=seconds("hedge.delay", hedge.get("delay")),
        hedge_percentile=None if percentile is None else float(percentile),
        anthropic_beta=_beta_list(name, raw.get("anthropic_beta")),
    )


_POLICY_SECTIONS = tuple(f.name for f in fields(PolicyConfig))
"""The top-level keys that make up `Config.policy` (``budgets``, ``rate_limits``, ...)."""

_TOP_LEVEL = {
    "orchestrator",
    "processor",
    "gateway",
    "emulator",
    "providers",
    "aliases",
    "limits",
    "media_fetch",
    "routes",
    "resilience",
    "ledger",
    "auth",
    "telemetry",
    *_POLICY_SECTIONS,
}


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A top-level mapping (absent or empty: ``{}``)."""
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    return value


def _setting(
    kind: type[Any],
    section: Mapping[str, Any],
    where: str,
    key: str,
    default: Any,
    env: Mapping[str, str] | None = None,
    var: str | None = None,
) -> Any:
    """``where.key`` as `kind`: the variable `var` if set, else the file's value, else `default`.

    An error names the variable when the value came from it, else the key."""
    if env is not None and var is not None and var in env:
        return _typed(kind, env[var], var)
    return _typed(kind, section.get(key, default), f"{where}.{key}")


def _typed(kind: type[Any], value: Any, key: str) -> Any:
    """`value` as `kind` (``str``, ``int`` or ``float``; env values are strings)."""
    if isinstance(value, bool) and kind is not str:
        raise ConfigError(f"{key}: expected {'an integer' if kind is int else 'a number'}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        what = {str: "a string", int: "an integer", float: "a number"}[kind]
        raise ConfigError(f"{key}: expected {what}, got {value!r}") from None


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read the configuration file (if any), then apply environment overrides.

    Every section is parsed and validated here, so a bad file fails before any server
    starts, with an error naming the key; a key absent from the file and the environment
    takes the default declared on its dataclass (`Config`, `EmulatorConfig`, ...).
    """
    env = os.environ if env is None else env
    chosen = path or env.get("LLMESH_CONFIG")
    if chosen is None and Path("llmesh.yaml").exists():
        chosen = "llmesh.yaml"
    raw: dict[str, Any] = {}
    if chosen:
        try:
            loaded = yaml.safe_load(Path(chosen).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read configuration {chosen}: {exc}") from exc
        raw = loaded or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{chosen}: expected a mapping at the top level")
    unknown = set(raw) - _TOP_LEVEL
    if unknown:
        raise ConfigError(f"unknown top-level keys {sorted(map(str, unknown))}")

    default = Config()
    emu_raw = _section(raw, "emulator")
    emulator = EmulatorConfig(
        host=_setting(
            str, emu_raw, "emulator", "host", default.emulator.host, env, "LLMESH_EMULATOR_HOST"
        ),
        port=_setting(
            int, emu_raw, "emulator", "port", default.emulator.port, env, "LLMESH_EMULATOR_PORT"
        ),
    )
    providers = _default_providers(emulator)
    for name, body in _section(raw, "providers").items():
        providers[name] = _provider(str(name), body)
    aliases = {str(k): str(v) for k, v in _section(raw, "aliases").items()}
    for alias, target in aliases.items():
        if "/" not in target:
            raise ConfigError(f"aliases.{alias}: {target!r} is not a provider/model name")

    routes = {str(k): _route(str(k), v) for k, v in _section(raw, "routes").items()}
    clash = set(routes) & set(aliases)
    if clash:
        raise ConfigError(f"names used both as alias and route: {sorted(clash)}")
    try:
        resilience = Resilience.from_mapping(raw.get("resilience"))
    except FieldError as exc:
        raise ConfigError(str(exc.under("resilience"))) from None
    try:  # errors already name the top-level key (budgets, rate_limits, cache, prices)
        policy = PolicyConfig.from_mapping({k: raw[k] for k in _POLICY_SECTIONS if k in raw})
    except FieldError as exc:
        raise ConfigError(str(exc)) from None
    orch_raw = _section(raw, "orchestrator")
    proc_raw = _section(raw, "processor")
    gw = _section(raw, "gateway")
    try:
        max_message_bytes, part_limits = limits_from_mapping(_section(raw, "limits"))
    except FieldError as exc:
        raise ConfigError(str(exc.under("limits"))) from None
    try:
        media_fetch = build(MediaFetchConfig, raw.get("media_fetch"))
    except FieldError as exc:
        raise ConfigError(str(exc.under("media_fetch"))) from None
    ledger_raw = _section(raw, "ledger")
    auth_raw = _section(raw, "auth")
    return Config(
        orchestrator_address=_setting(
            str,
            orch_raw,
            "orchestrator",
            "address",
            default.orchestrator_address,
            env,
            "LLMESH_ORCHESTRATOR_ADDRESS",
        ),
        processor_address=_setting(
            str,
            proc_raw,
            "processor",
            "address",
            default.processor_address,
            env,
            "LLMESH_PROCESSOR_ADDRESS",
        ),
        gateway_host=_setting(
            str, gw, "gateway", "host", default.gateway_host, env, "LLMESH_GATEWAY_HOST"
        ),
        gateway_port=_setting(
            int, gw, "gateway", "port", default.gateway_port, env, "LLMESH_GATEWAY_PORT"
        ),
        gateway_drop_params=names(gw.get("drop_params"), "gateway.drop_params"),
        emulator=emulator,
        providers=providers,
        aliases=aliases,
        max_message_bytes=max_message_bytes,
        part_limits=part_limits,
        media_fetch=media_fetch,
        routes=routes,
        resilience=resilience,
        shutdown_grace=_setting(
            float, orch_raw, "orchestrator", "shutdown_grace", default.shutdown_grace
        ),
        database_url=str(
            env.get("LLMESH_DATABASE_URL") or ledger_raw.get("url") or default.database_url
        ),
        ledger_flush_interval=_setting(
            float, ledger_raw, "ledger", "flush_interval", default.ledger_flush_interval
        ),
        allow_unauthenticated=flag(
            auth_raw.get("allow_unauthenticated", default.allow_unauthenticated),
            "auth.allow_unauthenticated",
        ),
        policy=policy,
        telemetry=_section(raw, "telemetry"),
    )


@dataclass(frozen=True)
class ResolvedProvider:
    """A provider with its endpoint and key settled from config, environment or defaults."""

    config: ProviderConfig
    base_url: str
    api_key: str
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


def with_overrides(config: Config, **changes: Any) -> Config:
    """A copy of the configuration with some top-level fields replaced (for tests and the CLI)."""
    return replace(config, **changes)
