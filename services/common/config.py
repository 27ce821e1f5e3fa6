"""llmesh configuration: one YAML file, environment overrides, defaults that need nothing.

The file is found at ``--config``, else ``$LLMESH_CONFIG``, else ``llmesh.yaml`` in the
working directory if it exists; with none, the defaults below apply and every provider
without credentials is served by the built-in emulator. `llmesh.example.yaml` documents
every key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml
from platformdirs import user_data_path

from llmesh.services.common.auth_settings import JwtIssuer, parse_jwt
from llmesh.services.common.batch_settings import BatchConfig
from llmesh.services.common.config_fields import ConfigError, FieldError, build, flag, names
from llmesh.services.common.media_settings import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MediaFetchConfig,
    PartLimits,
    limits_from_mapping,
)
from llmesh.services.common.model_settings import (
    MODEL_SECTIONS,
    ModelSettings,
    parse_model_settings,
)
from llmesh.services.common.policy_settings import PolicyConfig
from llmesh.services.common.provider_settings import (
    LOCAL_MODEL_PACKAGES,
    PROVIDER_KINDS,
    STRUCTURED_OUTPUT_MODES,
    EmulatorConfig,
    ProviderConfig,
    ResolvedProvider,
    default_providers,
    field_default,
    parse_provider,
    resolve_provider,
)
from llmesh.services.common.resilience_settings import Resilience
from llmesh.services.common.route_settings import (
    MID_STREAM_POLICIES,
    RouteConfig,
    check_fallbacks,
    parse_route,
)
from llmesh.services.common.telemetry_settings import TelemetrySettings, parse_telemetry
from llmesh.services.common.tls_settings import TlsConfig, TlsSettings, parse_tls

__all__ = [
    "LOCAL_MODEL_PACKAGES",
    "MID_STREAM_POLICIES",
    "PROVIDER_KINDS",
    "STRUCTURED_OUTPUT_MODES",
    "BatchConfig",
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
    "TlsConfig",
    "TlsSettings",
    "default_database_url",
    "load_config",
    "resolve_provider",
    "with_overrides",
]


def _unknown_fields(value: object) -> str:
    """``gateway.unknown_fields``: ``reject`` (the default) or ``drop``."""
    if value is None:
        return str(field_default(Config, "gateway_unknown_fields"))
    if value not in ("reject", "drop"):
        raise ConfigError(f"gateway.unknown_fields: expected reject or drop, got {value!r}")
    return str(value)


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
    orchestrator_workers: int | None = None
    """Processes `llmesh up` runs the orchestrator in, sharing its port
    (``orchestrator.workers``; ``--workers`` wins); None: one per core."""
    gateway_workers: int | None = None
    """Processes `llmesh up` runs the gateway in, sharing its port (``gateway.workers``;
    ``--workers`` wins); None: one per core."""
    gateway_orchestrator_channels: int | None = None
    """gRPC channels (connections per replica) a gateway process spreads its orchestrator
    calls over (``gateway.orchestrator_channels``, ``LLMESH_GATEWAY_ORCHESTRATOR_CHANNELS``);
    None: 4 per orchestrator worker when ``orchestrator.workers`` is more than one, else one
    (`llmesh up --workers N` sets the variable for N workers)."""
    gateway_orchestrators: tuple[str, ...] = ()
    """The orchestrator replicas the gateway balances over (``gateway.orchestrators``): IP
    ``host:port`` addresses, or one ``dns:///name:port`` target; empty: the one at
    ``orchestrator.address``."""
    gateway_drop_params: tuple[str, ...] = ()
    """Top-level ``/v1/chat/completions`` body fields the gateway accepts and drops instead of
    refusing with a 400 (``gateway.drop_params``); fields llmesh honours are never dropped."""
    gateway_unknown_fields: str = "reject"
    """What the gateway does with unknown /v1 chat fields (``gateway.unknown_fields``):
    ``reject`` (a 400 naming the field) or ``drop`` (accepted, dropped and named in the
    ``x-llmesh-dropped-params`` response header)."""
    gateway_response_ttl_days: float = 30.0
    """Days a ``/v1/responses`` response stays stored for ``previous_response_id``
    (``gateway.response_ttl_days``; 0 turns response storage off)."""
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
    orchestrator_http_host: str = "127.0.0.1"
    """Interface of the direct HTTP path (``orchestrator.http.host``)."""
    orchestrator_http_port: int = 0
    """TCP port of the direct HTTP path (``orchestrator.http.port``,
    ``LLMESH_ORCHESTRATOR_HTTP_PORT``): the gateway's routes served from the orchestrator's
    own process, with no gRPC hop. 0 (the default): off."""
    max_connection_age: float = 300.0
    """Seconds before the orchestrator asks a client to reconnect (``orchestrator.
    max_connection_age``; calls in flight finish first): a gateway balancing over a DNS name
    then resolves it again, so replicas added since join its rotation. 0: never."""
    database_url: str = field(default_factory=default_database_url)
    """Where the usage ledger and API keys live: ``sqlite:///path`` or ``postgresql://...``;
    by default ``llmesh.db`` in the per-user data directory (see `default_database_url`)."""
    ledger_flush_interval: float = 0.05
    """Seconds between ledger writes; at most this much usage is lost on a crash."""
    ledger_lease: float = 15.0
    """Seconds a process's claim on its calls in flight lasts without a renewal (``ledger.
    lease``; renewed every third of it): once it lapses, any replica closes those calls as
    interrupted. A process on the same machine that is gone is seen at once."""
    allow_unauthenticated: bool = False
    """Serve a non-loopback address without API keys (refused unless set)."""
    admin_tenants: tuple[str, ...] = ()
    """Tenants whose API keys (and tokens) see every tenant's usage and calls and may create
    template versions and set their weights (``auth.admin_tenants``); any other key sees only
    its own tenant's and only reads templates."""
    jwt_issuers: tuple[JwtIssuer, ...] = ()
    """Issuers whose signed bearer tokens (JWT) are accepted beside API keys (``auth.jwt``,
    ``LLMESH_JWT_*``); with any, every call must authenticate."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """Budgets, rate limits, the response cache and price overrides (the top-level
    ``budgets``, ``rate_limits``, ``cache`` and ``prices`` sections)."""
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    """Traces and metrics (the ``telemetry`` section and the ``OTEL_*`` variables)."""
    tls: TlsConfig = field(default_factory=TlsConfig)
    """Certificates of every listener and client (the ``tls`` section); none: plaintext."""
    reload_interval: float = 2.0
    """Seconds between checks of the configuration file for changes to reload
    (``orchestrator.reload_interval``; 0: reload on SIGHUP only)."""
    source: str | None = None
    """The file this configuration was read from (None: none), for reloads."""
    models: ModelSettings = field(default_factory=ModelSettings)
    """Capability overrides and roles (the ``capabilities``, ``roles`` and ``tenants``
    sections)."""
    batch: BatchConfig = field(default_factory=BatchConfig)
    """How batch jobs run (the ``batch`` section)."""


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
    "tls",
    "templates",
    "batch",
    *MODEL_SECTIONS,
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


def _workers(
    section: Mapping[str, Any],
    where: str,
    key: str = "workers",
    env: Mapping[str, str] | None = None,
    var: str | None = None,
) -> int | None:
    """``where.key`` (the variable `var` if set): a whole number >= 1, or None when absent."""
    value, name = section.get(key), f"{where}.{key}"
    if env is not None and var is not None and var in env:
        value, name = _typed(int, env[var], var), var
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: expected a whole number >= 1, got {value!r}")
    return value


def _non_negative(value: float, key: str = "gateway.response_ttl_days") -> float:
    if not value >= 0:  # also NaN
        raise ConfigError(f"{key}: expected a number >= 0, got {value!r}")
    return value


def _positive_setting(value: float, key: str) -> float:
    if not value > 0:  # also NaN
        raise ConfigError(f"{key}: expected a number > 0, got {value!r}")
    return value


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
    providers = default_providers(emulator)
    for name, body in _section(raw, "providers").items():
        providers[name] = parse_provider(str(name), body)
    aliases = {str(k): str(v) for k, v in _section(raw, "aliases").items()}
    for alias, target in aliases.items():
        if "/" not in target:
            raise ConfigError(f"aliases.{alias}: {target!r} is not a provider/model name")

    routes = {str(k): parse_route(str(k), v) for k, v in _section(raw, "routes").items()}
    check_fallbacks({n: r.fallbacks for n, r in routes.items()})
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
    http_raw = _section({"orchestrator.http": orch_raw.get("http")}, "orchestrator.http")
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
    try:
        batch = build(BatchConfig, raw.get("batch"))
    except FieldError as exc:
        raise ConfigError(str(exc.under("batch"))) from None
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
        orchestrator_workers=_workers(orch_raw, "orchestrator"),
        gateway_workers=_workers(gw, "gateway"),
        gateway_orchestrator_channels=_workers(
            gw, "gateway", "orchestrator_channels", env, "LLMESH_GATEWAY_ORCHESTRATOR_CHANNELS"
        ),
        gateway_orchestrators=names(gw.get("orchestrators"), "gateway.orchestrators"),
        gateway_drop_params=names(gw.get("drop_params"), "gateway.drop_params"),
        gateway_unknown_fields=_unknown_fields(gw.get("unknown_fields")),
        gateway_response_ttl_days=_non_negative(
            _setting(float, gw, "gateway", "response_ttl_days", default.gateway_response_ttl_days)
        ),
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
        orchestrator_http_host=_setting(
            str, http_raw, "orchestrator.http", "host", default.orchestrator_http_host
        ),
        orchestrator_http_port=_setting(
            int,
            http_raw,
            "orchestrator.http",
            "port",
            default.orchestrator_http_port,
            env,
            "LLMESH_ORCHESTRATOR_HTTP_PORT",
        ),
        max_connection_age=_non_negative(
            _setting(
                float, orch_raw, "orchestrator", "max_connection_age", default.max_connection_age
            ),
            "orchestrator.max_connection_age",
        ),
        database_url=str(
            env.get("LLMESH_DATABASE_URL") or ledger_raw.get("url") or default.database_url
        ),
        ledger_flush_interval=_setting(
            float, ledger_raw, "ledger", "flush_interval", default.ledger_flush_interval
        ),
        ledger_lease=_positive_setting(
            _setting(float, ledger_raw, "ledger", "lease", default.ledger_lease), "ledger.lease"
        ),
        allow_unauthenticated=flag(
            auth_raw.get("allow_unauthenticated", default.allow_unauthenticated),
            "auth.allow_unauthenticated",
        ),
        admin_tenants=names(auth_raw.get("admin_tenants"), "auth.admin_tenants"),
        jwt_issuers=parse_jwt(auth_raw.get("jwt"), env),
        policy=policy,
        telemetry=parse_telemetry(raw.get("telemetry"), env),
        tls=parse_tls(raw.get("tls"), env),
        reload_interval=_non_negative(
            _setting(float, orch_raw, "orchestrator", "reload_interval", default.reload_interval),
            "orchestrator.reload_interval",
        ),
        source=str(chosen) if chosen else None,
        models=parse_model_settings(raw),
        batch=batch,
    )


def with_overrides(config: Config, **changes: Any) -> Config:
    """A copy of the configuration with some top-level fields replaced (for tests and the CLI)."""
    return replace(config, **changes)
