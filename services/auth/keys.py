"""API keys: their format, how their secrets are hashed, and the records describing them.

A key reads ``llm_<key_id>_<secret>``: ``key_id`` is 12 lowercase hex characters, public,
and names the key in listings, logs and errors; ``secret`` is 32 random bytes in urlsafe
base64 and is never stored, logged or shown again after creation.

Stores keep ``HMAC-SHA256(pepper, "llmesh-api-key-v1:" + key_id + ":" + secret)``, where the
pepper is 32 random bytes generated with the store. The secrets carry 256 bits of entropy, so
a deliberately slow hash (scrypt, PBKDF2) would protect nothing a brute force could reach, while
it would cost milliseconds on every uncached check; the keyed hash costs about a microsecond,
a leaked hash table alone is useless without the pepper, and binding the key_id into the
message stops a hash being moved from one key's row to another's.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from llmesh.services.core.priority import Priority

KEY_PREFIX = "llm_"
"""Every llmesh API key starts with this, so leaked keys are easy to spot and scan for."""

_KEY_RE = re.compile(r"llm_([0-9a-f]{12})_([A-Za-z0-9_-]{43,128})")
_KEY_ID_RE = re.compile(r"[0-9a-f]{12}")
_TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HASH_CONTEXT = b"llmesh-api-key-v1:"
MAX_NAME_LENGTH = 200
"""The longest name a key may carry."""


KEY_CEILING = Priority.NORMAL
"""The highest tier of a key created without a maximum: higher tiers are granted, not taken."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a call acts for: the tenant, and the key that proved it (empty when auth is off)."""

    tenant: str
    """The tenant every quota, budget and log line of the call is charged to."""
    key_id: str
    """The public id of the API key used (``jwt:<subject>`` for a bearer token), or ``""``
    when authentication is off."""
    tier: int = 0
    """The priority tier a bearer token's tier claim grants (0, the lowest, for API keys)."""
    default_priority: Priority | None = field(default=None, compare=False)
    """The tier of the key's calls that name none (None: the tenant's default, or normal)."""
    max_priority: Priority | None = field(default=None, compare=False)
    """The highest tier the key or token may use (None: no ceiling, authentication off).
    Both tiers follow from the key or token (not compared: a principal is who calls)."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What is known about one API key, without its secret."""

    key_id: str
    """The public id, the part between ``llm_`` and the secret."""
    tenant: str
    """The tenant the key acts for."""
    name: str
    """A free-form label chosen at creation, e.g. ``ci`` or ``alice laptop``."""
    created_at: datetime
    """When the key was created (UTC)."""
    revoked_at: datetime | None = None
    """When the key was revoked (UTC), or None while it is active."""
    default_priority: Priority | None = None
    """The tier of the key's calls that name none (None: the tenant's default, or normal)."""
    max_priority: Priority | None = None
    """The highest tier the key's calls may use (None: ``normal``, see `KEY_CEILING`)."""

    @property
    def ceiling(self) -> Priority:
        """The highest tier the key's calls may use."""
        return KEY_CEILING if self.max_priority is None else self.max_priority

    @property
    def active(self) -> bool:
        """True until the key is revoked."""
        return self.revoked_at is None


def new_key_id() -> str:
    """A fresh random key id: 12 hex characters (48 bits, plenty to stay unique)."""
    return secrets.token_hex(6)


def new_secret() -> str:
    """A fresh secret: 32 random bytes, urlsafe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(32)


def format_key(key_id: str, secret: str) -> str:
    """The full key string handed to the user once."""
    return f"{KEY_PREFIX}{key_id}_{secret}"


def parse_key(presented: str) -> tuple[str, str] | None:
    """Split a presented key into ``(key_id, secret)``, or None when it is not well formed."""
    match = _KEY_RE.fullmatch(presented)
    if match is None:
        return None
    return match.group(1), match.group(2)


def is_key_id(value: str) -> bool:
    """True when ``value`` has the shape of a key id."""
    return _KEY_ID_RE.fullmatch(value) is not None


def hash_secret(pepper: bytes, key_id: str, secret: str) -> bytes:
    """The stored form of a secret: a 32-byte HMAC-SHA256 under the store's pepper."""
    message = _HASH_CONTEXT + key_id.encode("ascii") + b":" + secret.encode("ascii")
    return hmac.digest(pepper, message, "sha256")


def check_tenant(tenant: str) -> str | None:
    """Why ``tenant`` is not a valid tenant name, or None when it is."""
    if _TENANT_RE.fullmatch(tenant) is None:
        return (
            "a tenant is 1-128 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return None


def check_name(name: str) -> str | None:
    """Why ``name`` is not a valid key name, or None when it is."""
    if len(name) > MAX_NAME_LENGTH:
        return f"a key name is at most {MAX_NAME_LENGTH} characters"
    if any(not ch.isprintable() for ch in name):
        return "a key name may not contain control characters"
    return None
