"""The key store: create, list, revoke and verify API keys, over SQLite or PostgreSQL.

`KeyStore` holds everything that does not depend on the database: key generation, hashing,
constant-time comparison and a small cache of verified keys, so a check that hits the cache
costs a few microseconds and no query. A backend supplies five primitive operations.

The cache holds only keys that verified, each with its stored hash, so a wrong secret for a
cached key still fails. A revoke in this process drops the entry at once; a revoke made by
another process (the CLI, another server) takes effect within ``cache_ttl`` seconds, or at
once on PostgreSQL, whose stores tell each other through ``LISTEN``/``NOTIFY``.
"""

from __future__ import annotations

import abc
import builtins
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from llmesh.services.auth.keys import (
    KEY_CEILING,
    KeyInfo,
    Principal,
    check_name,
    check_tenant,
    format_key,
    hash_secret,
    is_key_id,
    new_key_id,
    new_secret,
    parse_key,
)
from llmesh.services.core.priority import Priority, parse_priority

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""The version of the tables this code reads and writes (2 added the keys' priority
columns ``default_priority`` and ``max_priority``)."""

MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE llmesh_api_keys ADD COLUMN default_priority TEXT",
        "ALTER TABLE llmesh_api_keys ADD COLUMN max_priority TEXT",
    ),
}
"""The statements taking the tables from the version before each key to that version; the
same SQL on SQLite and PostgreSQL."""

KEY_COLUMNS = (
    "key_id, tenant, name, secret_hash, created_at, revoked_at, default_priority, max_priority"
)
"""The columns a backend selects for a `StoredKey`, in the order its row reader expects."""


def priority_column(value: Priority | None) -> str | None:
    """A tier as stored: its name, or NULL."""
    return None if value is None else value.label


def priority_of(value: str | None) -> Priority | None:
    """A stored tier back (NULL, or a name this llmesh does not know, is None)."""
    return None if value is None else parse_priority(value)


DEFAULT_CACHE_TTL = 5.0
"""Seconds a verified key is trusted without asking the database again."""

DEFAULT_CACHE_SIZE = 10_000
"""The most verified keys kept in memory."""


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One row of the keys table, as a backend returns it."""

    info: KeyInfo
    secret_hash: bytes

    def __repr__(self) -> str:
        return f"StoredKey(info={self.info!r})"


@dataclass(slots=True)
class _Cached:
    secret_hash: bytes
    principal: Principal
    expires: float


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe to log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


class KeyStore(abc.ABC):
    """API keys of every tenant, stored only as keyed hashes of their secrets."""

    def __init__(
        self,
        pepper: bytes,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if len(pepper) < 16:
            raise ValueError("the key store's pepper must be at least 16 bytes")
        self._pepper = pepper
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._cache: dict[str, _Cached] = {}
        self._invalidations = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the keys live, safe to log (no password, no pepper)."""

    async def create(
        self,
        tenant: str,
        name: str = "",
        *,
        default_priority: Priority | None = None,
        max_priority: Priority | None = None,
    ) -> tuple[KeyInfo, str]:
        """Make a key for ``tenant``; the full key string is returned here and never again.

        `default_priority` is the tier of its calls that name none; `max_priority` the
        highest they may use (None: ``normal``); a default above the maximum is refused."""
        problem = check_tenant(tenant) or check_name(name)
        ceiling = KEY_CEILING if max_priority is None else max_priority
        if not problem and default_priority is not None and default_priority > ceiling:
            problem = (
                f"the default priority {default_priority.label} is above the key's maximum"
                f" {ceiling.label}"
            )
        if problem:
            raise ValueError(problem)
        key_id, secret = new_key_id(), new_secret()
        info = KeyInfo(
            key_id,
            tenant,
            name,
            datetime.now(UTC),
            default_priority=default_priority,
            max_priority=max_priority,
        )
        await self._insert(StoredKey(info, hash_secret(self._pepper, key_id, secret)))
        log.info("created API key %s for tenant %s", key_id, tenant)
        return info, format_key(key_id, secret)

    async def list(self, tenant: str | None = None) -> builtins.list[KeyInfo]:
        """Every key (or every key of ``tenant``), oldest first, revoked ones included."""
        return await self._select(tenant)

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; False when no active key has this id."""
        if not is_key_id(key_id):
            return False
        revoked = await self._mark_revoked(key_id, datetime.now(UTC))
        self.invalidate(key_id)
        if revoked:
            log.info("revoked API key %s", key_id)
        return revoked

    async def verify(self, presented: str) -> Principal | None:
        """The principal a presented key proves, or None (malformed, unknown, wrong, revoked)."""
        parsed = parse_key(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        digest = hash_secret(self._pepper, key_id, secret)
        cached = self._cache.get(key_id)
        if cached is not None and cached.expires > time.monotonic():
            return cached.principal if hmac.compare_digest(cached.secret_hash, digest) else None
        generation = self._invalidations
        row = await self._lookup(key_id)
        if row is None or not row.info.active:
            self._cache.pop(key_id, None)
            return None
        if not hmac.compare_digest(row.secret_hash, digest):
            return None
        principal = Principal(
            row.info.tenant,
            key_id,
            default_priority=row.info.default_priority,
            max_priority=row.info.ceiling,
        )
        if generation == self._invalidations:
            self._remember(key_id, row.secret_hash, principal)
        return principal

    async def has_keys(self) -> bool:
        """True once any key was created, revoked or not.

        Revoking the last key therefore does not switch authentication off: it locks
        everyone out until a new key is made.
        """
        return await self._count() > 0

    def invalidate(self, key_id: str | None = None) -> None:
        """Forget one cached key (or all), so its next check asks the database."""
        self._invalidations += 1
        if key_id is None:
            self._cache.clear()
        else:
            self._cache.pop(key_id, None)

    async def aclose(self) -> None:
        """Release the database connections and forget the cache."""
        self._cache.clear()
        await self._close()

    def _remember(self, key_id: str, secret_hash: bytes, principal: Principal) -> None:
        if len(self._cache) >= self._cache_size:
            now = time.monotonic()
            for stale in [k for k, v in self._cache.items() if v.expires <= now]:
                del self._cache[stale]
            while len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]
        self._cache[key_id] = _Cached(secret_hash, principal, time.monotonic() + self._cache_ttl)

    @abc.abstractmethod
    async def _insert(self, row: StoredKey) -> None:
        """Add a new key row."""

    @abc.abstractmethod
    async def _select(self, tenant: str | None) -> builtins.list[KeyInfo]:
        """Key rows, optionally of one tenant, ordered by creation time."""

    @abc.abstractmethod
    async def _mark_revoked(self, key_id: str, at: datetime) -> bool:
        """Set ``revoked_at`` on an active key; False when there was none."""

    @abc.abstractmethod
    async def _lookup(self, key_id: str) -> StoredKey | None:
        """One key row by id."""

    @abc.abstractmethod
    async def _count(self) -> int:
        """How many key rows exist."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Close the backend's connections."""


async def open_key_store(
    url: str,
    *,
    cache_ttl: float = DEFAULT_CACHE_TTL,
    cache_size: int = DEFAULT_CACHE_SIZE,
) -> KeyStore:
    """Open (creating its tables if needed) the key store at ``url``.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``sqlite:///:memory:``
    give the embedded store; ``postgresql://user@host:port/db`` a shared one, whose tables go
    in the first schema of the ``search_path`` (``?search_path=NAME`` picks one).
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from llmesh.services.auth.sqlite_store import SqliteKeyStore, sqlite_path

        return await SqliteKeyStore.open(
            sqlite_path(url), cache_ttl=cache_ttl, cache_size=cache_size
        )
    if scheme in ("postgresql", "postgres"):
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        from llmesh.services.auth.postgres_store import PostgresKeyStore

        parts = urlsplit(url)  # ``?schema=NAME`` (the ledger's spelling) means search_path
        query = [
            ("search_path" if k == "schema" else k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        url = urlunsplit(parts._replace(query=urlencode(query)))

        return await PostgresKeyStore.open(url, cache_ttl=cache_ttl, cache_size=cache_size)
    raise ValueError(
        f"unsupported key store URL scheme {scheme!r}: use sqlite:///PATH or postgresql://..."
    )
