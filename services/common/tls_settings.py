"""The ``tls`` configuration section: certificate files for every listener and every client.

One set of keys at the top of the section applies to every service; a sub-mapping named
after a service (``orchestrator``, ``processor``, ``gateway``, ``cli``) overrides some of
them for that service alone. Each key has an environment variable, which wins over the
file at its level: ``LLMESH_TLS_CERT`` for ``tls.cert``, ``LLMESH_GATEWAY_TLS_CA`` for
``tls.gateway.ca`` (an empty value turns the key off). A service's own keys win over the
shared ones. With no key set, everything stays plaintext.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from llmesh.services.common.config_fields import ConfigError

__all__ = ["TLS_SERVICES", "TlsConfig", "TlsSettings", "parse_tls"]

TLS_SERVICES = ("orchestrator", "processor", "gateway", "cli")
"""The services that may override the shared keys (the direct HTTP path and the metrics
ports use their process's: the orchestrator's, the processor's)."""


@dataclass(frozen=True)
class TlsSettings:
    """The TLS files of one service: what its listeners present and what its clients trust.

    Paths are read when the service starts (relative ones from its working directory)."""

    cert: str | None = None
    """PEM certificate (chain) every listener presents; set, the listeners speak TLS."""
    key: str | None = None
    """PEM private key of `cert` (not encrypted)."""
    client_ca: str | None = None
    """PEM CA certificates; set, listeners require a client certificate signed by them
    (mutual TLS)."""
    ca: str | None = None
    """PEM CA certificates the service's clients trust; set, its outgoing gRPC channels
    (gateway -> orchestrator and processor, the direct HTTP path -> processor, the CLI ->
    orchestrator) speak TLS and verify the server's certificate against them."""
    client_cert: str | None = None
    """PEM certificate (chain) the clients present, for servers that require one."""
    client_key: str | None = None
    """PEM private key of `client_cert`."""
    server_name: str | None = None
    """The name the clients expect in the servers' certificates, instead of the host of the
    address dialled (for replica lists given as IP addresses)."""

    @property
    def serves_tls(self) -> bool:
        """Whether the service's listeners speak TLS."""
        return self.cert is not None

    @property
    def dials_tls(self) -> bool:
        """Whether the service's outgoing gRPC channels speak TLS."""
        return self.ca is not None

    @property
    def mutual(self) -> bool:
        """Whether the listeners require client certificates."""
        return self.client_ca is not None

    @property
    def label(self) -> str:
        """What `llmesh up` prints after a listener's address: `` (TLS)``, `` (mTLS)`` or
        nothing."""
        if not self.serves_tls:
            return ""
        return " (mTLS)" if self.mutual else " (TLS)"


_KEYS = tuple(f.name for f in fields(TlsSettings))


@dataclass(frozen=True)
class TlsConfig:
    """The whole ``tls`` section: shared settings and per-service overrides."""

    shared: TlsSettings = field(default_factory=TlsSettings)
    """The top-level keys, for every service."""
    overrides: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    """Per service, the keys it sets itself (None: turned off for it)."""

    def service(self, name: str) -> TlsSettings:
        """The settings service `name` runs with: the shared ones, then its own."""
        own = self.overrides.get(name)
        return replace(self.shared, **own) if own else self.shared


def _layer(
    raw: Mapping[str, Any], where: str, env: Mapping[str, str], prefix: str
) -> dict[str, str | None]:
    """The keys set at one level: in the file, then by its environment variables."""
    unknown = set(raw) - set(_KEYS) - (set(TLS_SERVICES) if where == "tls" else set())
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(map(str, unknown))}")
    out: dict[str, str | None] = {}
    for key in _KEYS:
        var = f"{prefix}{key.upper()}"
        if var in env:
            out[key] = os.path.expanduser(env[var]) if env[var] else None
        elif key in raw:
            value = raw[key]
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{where}.{key}: expected a file path, got {value!r}")
            out[key] = None if value is None else os.path.expanduser(value)
    return out


def _check(settings: TlsSettings, where: str) -> None:
    """Refuse keys that make no sense without their partner."""
    pairs = (("cert", "key"), ("client_cert", "client_key"))
    for a, b in pairs:
        if (getattr(settings, a) is None) != (getattr(settings, b) is None):
            raise ConfigError(f"{where}: {a} and {b} go together (set both or neither)")
    if settings.client_ca is not None and settings.cert is None:
        raise ConfigError(f"{where}: client_ca needs cert and key (mutual TLS is TLS)")
    if settings.client_cert is not None and settings.ca is None:
        raise ConfigError(f"{where}: client_cert needs ca (the CA the servers are checked by)")


def parse_tls(raw: object, env: Mapping[str, str]) -> TlsConfig:
    """The ``tls`` section from the file's mapping (None: absent) and the environment."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"tls: expected a mapping, got {raw!r}")
    shared = TlsSettings(**_layer(raw, "tls", env, "LLMESH_TLS_"))
    overrides: dict[str, Mapping[str, str | None]] = {}
    for name in TLS_SERVICES:
        own = raw.get(name) or {}
        if not isinstance(own, Mapping):
            raise ConfigError(f"tls.{name}: expected a mapping, got {own!r}")
        layer = _layer(own, f"tls.{name}", env, f"LLMESH_{name.upper()}_TLS_")
        if layer:
            overrides[name] = layer
    config = TlsConfig(shared, overrides)
    _check(shared, "tls")
    for name in TLS_SERVICES:
        _check(config.service(name), f"tls.{name}" if name in overrides else "tls")
    return config
