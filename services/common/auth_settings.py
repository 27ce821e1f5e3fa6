"""The ``auth.jwt`` configuration section: which JWT issuers' bearer tokens are accepted.

It lives on the ground floor so `load_config` can parse it with the rest of the file; the
auth package acts on it (`llmesh.services.auth.tokens`). One issuer is a mapping, several
a list of mappings; the ``LLMESH_JWT_*`` variables set (or override) the fields of the only
one.

```yaml
auth:
  jwt:
    issuer: https://login.example.com/      # LLMESH_JWT_ISSUER; the token's iss, exactly
    audience: llmesh                        # LLMESH_JWT_AUDIENCE; must be in the token's aud
    jwks_url: https://login.example.com/.well-known/jwks.json   # LLMESH_JWT_JWKS_URL
    # jwks_file: /etc/llmesh/jwks.json      # LLMESH_JWT_JWKS_FILE (instead of jwks_url)
    algorithms: [RS256, ES256, EdDSA]       # LLMESH_JWT_ALGORITHMS (comma-separated)
    leeway_seconds: 30                      # LLMESH_JWT_LEEWAY_SECONDS; clock skew, <= 300
    tenant_claim: tenant                    # LLMESH_JWT_TENANT_CLAIM
    tier_claim: plan                        # LLMESH_JWT_TIER_CLAIM; "" for none
    tiers: {free: 0, pro: 1, enterprise: 2} # tier claim value -> priority tier
    max_tier: 1                             # the highest tier this issuer may grant
```
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from llmesh.services.common.config_fields import ConfigError

__all__ = ["JWT_ALGORITHMS", "MAX_LEEWAY_SECONDS", "JwtIssuer", "parse_jwt"]

JWT_ALGORITHMS = ("RS256", "ES256", "EdDSA")
"""The signature algorithms a token may use: asymmetric only, so the JWKS holds no secret and
a public key can never be mistaken for an HMAC secret (``none`` and ``HS*`` are refused)."""

MAX_LEEWAY_SECONDS = 300.0
"""The most clock skew ``leeway_seconds`` may allow."""

_ENV = {
    "issuer": "LLMESH_JWT_ISSUER",
    "audience": "LLMESH_JWT_AUDIENCE",
    "jwks_file": "LLMESH_JWT_JWKS_FILE",
    "jwks_url": "LLMESH_JWT_JWKS_URL",
    "algorithms": "LLMESH_JWT_ALGORITHMS",
    "leeway_seconds": "LLMESH_JWT_LEEWAY_SECONDS",
    "tenant_claim": "LLMESH_JWT_TENANT_CLAIM",
    "tier_claim": "LLMESH_JWT_TIER_CLAIM",
}
"""The environment variable of each field that has one."""


@dataclass(frozen=True)
class JwtIssuer:
    """One issuer whose signed tokens (JWT) are accepted as bearer credentials."""

    issuer: str
    """The ``iss`` every token of this issuer carries, compared exactly."""
    audience: str
    """The audience llmesh is: a token's ``aud`` must name it."""
    jwks_file: str = ""
    """A file holding the issuer's JSON Web Key Set (re-read as `jwks_cache_seconds` pass)."""
    jwks_url: str = ""
    """The issuer's JWKS over ``https`` (``http`` only to a loopback address)."""
    algorithms: tuple[str, ...] = JWT_ALGORITHMS
    """The signature algorithms accepted: some of ``RS256``, ``ES256``, ``EdDSA``."""
    leeway_seconds: float = 30.0
    """Clock skew allowed on ``exp``, ``nbf`` and ``iat``, in seconds (0 to 300)."""
    tenant_claim: str = "tenant"
    """The claim naming the tenant a token acts for (e.g. ``org_id``); required in tokens."""
    subject_claim: str = "sub"
    """The claim identifying the caller; the ledger records it as key id ``jwt:<value>``."""
    tier_claim: str = ""
    """The claim naming the caller's priority tier, looked up in `tiers`; ``""``: none."""
    tiers: Mapping[str, int] = field(default_factory=dict)
    """Tier claim values mapped to priority tiers (0 the lowest); values not listed get 0."""
    max_tier: int | None = None
    """The highest tier this issuer may grant (higher ones are lowered to it); None: no cap."""
    jwks_cache_seconds: float = 300.0
    """How long fetched keys are used before they are fetched again."""
    jwks_refresh_seconds: float = 10.0
    """The least time between two fetches, also when a token names an unknown key id."""

    def __post_init__(self) -> None:
        for name in ("issuer", "audience", "tenant_claim", "subject_claim"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"{name}: expected a non-empty string")
        for name in ("jwks_file", "jwks_url", "tier_claim"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name}: expected a string")
        if bool(self.jwks_file) == bool(self.jwks_url):
            raise ConfigError("jwks_file, jwks_url: set exactly one")
        if self.jwks_url:
            _check_url(self.jwks_url)
        algorithms = self.algorithms
        if isinstance(algorithms, str):
            algorithms = tuple(a.strip() for a in algorithms.split(",") if a.strip())
        if not isinstance(algorithms, list | tuple) or not algorithms:
            raise ConfigError(f"algorithms: expected a list of some of {list(JWT_ALGORITHMS)}")
        refused = [a for a in algorithms if a not in JWT_ALGORITHMS]
        if refused:
            raise ConfigError(
                f"algorithms: {refused} not accepted; only {list(JWT_ALGORITHMS)} "
                "(asymmetric signatures: 'none' and HMAC are refused)"
            )
        object.__setattr__(self, "algorithms", tuple(algorithms))
        leeway = _number(self.leeway_seconds, "leeway_seconds")
        if not 0 <= leeway <= MAX_LEEWAY_SECONDS:
            raise ConfigError(f"leeway_seconds: expected 0 to {MAX_LEEWAY_SECONDS:g}")
        object.__setattr__(self, "leeway_seconds", leeway)
        for name in ("jwks_cache_seconds", "jwks_refresh_seconds"):
            if not _number(getattr(self, name), name) > 0:
                raise ConfigError(f"{name}: expected a number > 0")
            object.__setattr__(self, name, float(getattr(self, name)))
        if not isinstance(self.tiers, Mapping) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in self.tiers.values()
        ):
            raise ConfigError("tiers: expected a mapping of claim value -> tier (an integer >= 0)")
        object.__setattr__(self, "tiers", {str(k): v for k, v in self.tiers.items()})
        cap = self.max_tier
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
            raise ConfigError(f"max_tier: expected an integer >= 0, got {cap!r}")

    def tier(self, value: object) -> int:
        """The priority tier a token's tier claim `value` grants (capped at `max_tier`)."""
        tier = self.tiers.get(value, 0) if isinstance(value, str) else 0
        return tier if self.max_tier is None else min(tier, self.max_tier)


def _number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{key}: expected a number, got {value!r}") from None


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return
    raise ConfigError("jwks_url: expected an https:// URL (http:// only to a loopback address)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _issuer(raw: object, where: str) -> JwtIssuer:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    known = {f.name for f in fields(JwtIssuer)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(map(str, unknown))}")
    missing = {"issuer", "audience"} - set(raw)
    if missing:
        raise ConfigError(f"{where}: missing {sorted(missing)}")
    try:
        return JwtIssuer(**raw)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _from_env(base: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    out = dict(base)
    for name, var in _ENV.items():
        if var in env:
            out[name] = env[var]
    if "LLMESH_JWT_JWKS_URL" in env and "LLMESH_JWT_JWKS_FILE" not in env:
        out.pop("jwks_file", None)  # the variable replaces the file's source, not adds one
    if "LLMESH_JWT_JWKS_FILE" in env and "LLMESH_JWT_JWKS_URL" not in env:
        out.pop("jwks_url", None)
    return out


def parse_jwt(raw: object, env: Mapping[str, str]) -> tuple[JwtIssuer, ...]:
    """The issuers of ``auth.jwt`` (a mapping, or a list of them) with the ``LLMESH_JWT_*``
    variables applied; none when neither the file nor the environment names one."""
    if raw is None:
        raw = []
    entries = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(entries, list):
        raise ConfigError(f"auth.jwt: expected a mapping or a list of them, got {raw!r}")
    uses_env = any(var in env for var in _ENV.values())
    if uses_env:
        if len(entries) > 1:
            raise ConfigError("LLMESH_JWT_*: auth.jwt lists several issuers; set them in the file")
        first = entries[0] if entries else {}
        if not isinstance(first, Mapping):
            raise ConfigError(f"auth.jwt: expected a mapping, got {first!r}")
        entries = [_from_env(first, env)]
    where = "auth.jwt" if len(entries) == 1 else "auth.jwt[{}]"
    issuers = tuple(_issuer(entry, where.format(i)) for i, entry in enumerate(entries))
    seen = [i.issuer for i in issuers]
    if len(set(seen)) != len(seen):
        raise ConfigError("auth.jwt: each issuer may appear once")
    return issuers
