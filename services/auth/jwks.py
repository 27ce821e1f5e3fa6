"""An issuer's signing keys (its JSON Web Key Set), read from a file or an URL and cached.

Keys are used for ``jwks_cache_seconds`` after they were read, then read again on the next
token (tokens arriving while that read is under way are checked with the keys held). A
token naming a key id the set does not hold makes the set be read again at once (the
issuer rotated its keys), but never twice within ``jwks_refresh_seconds``: a flood of
tokens with made-up key ids costs one fetch per interval, not one per token. When a fetch
fails, the keys already held stay in use; with none, the call is refused as
SERVICE_UNREACHABLE (the issuer's keys cannot be had), not as a bad token.

Only public keys of the accepted algorithms are kept: symmetric (``oct``) keys, keys for
encryption (``use: enc``) and keys whose algorithm is not accepted are skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWTError

from llmesh.services.common.auth_settings import JwtIssuer
from llmesh.services.common.errors import LlmeshError, Reason

__all__ = ["Jwks", "KeyUnknown"]

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1 << 20
"""The largest key set read (a real one is a few kilobytes)."""

FETCH_TIMEOUT = 5.0
"""Seconds a JWKS URL may take to answer."""

Reader = Callable[[], Awaitable[bytes]]
"""Reads the key set's JSON document."""


class KeyUnknown(Exception):
    """The key set holds no key with the token's key id (or, without one, no single key)."""


def _read_url(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"accept": "application/json"})
    # the scheme is https, or http to a loopback address (checked when the config loads)
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as reply:
        body: bytes = reply.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"the key set is larger than {MAX_JWKS_BYTES} bytes")
    return body


def _read_file(path: str) -> bytes:
    with Path(path).open("rb") as f:
        body = f.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"the key set is larger than {MAX_JWKS_BYTES} bytes")
    return body


def reader_for(issuer: JwtIssuer) -> Reader:
    """How `issuer`'s key set is read: its file or its URL, off the event loop."""
    if issuer.jwks_file:
        path = issuer.jwks_file
        return lambda: asyncio.to_thread(_read_file, path)
    url = issuer.jwks_url
    return lambda: asyncio.to_thread(_read_url, url)


def parse_jwks(document: bytes, algorithms: tuple[str, ...]) -> dict[str | None, PyJWK]:
    """The usable public keys of a JWKS document, by key id (None for a key without one)."""
    data: Any = json.loads(document)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JSON Web Key Set: expected an object with a 'keys' list")
    keys: dict[str | None, PyJWK] = {}
    for entry in data["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") == "oct":
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = PyJWK(entry)
        except PyJWTError:
            continue  # a key type or curve PyJWT cannot use
        if key.algorithm_name not in algorithms:
            continue
        kid = entry.get("kid")
        keys[kid if isinstance(kid, str) else None] = key
    return keys


class Jwks:
    """One issuer's key set, cached and refreshed (see the module docstring)."""

    def __init__(
        self,
        issuer: JwtIssuer,
        *,
        read: Reader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuer = issuer
        self._read = read or reader_for(issuer)
        self._clock = clock
        self._keys: dict[str | None, PyJWK] = {}
        self._loaded = False
        self._expires = 0.0
        self._last_fetch = -float("inf")
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many times the set was read (successfully or not)."""
        self.generation = 0
        """Counts the key sets read successfully: a token verified under one generation is
        verified again once another is read, or once this one expires (`current`)."""

    def __repr__(self) -> str:
        source = self._issuer.jwks_file or self._issuer.jwks_url
        return f"Jwks({source!r}, keys={len(self._keys)})"

    async def key(self, kid: str | None) -> PyJWK:
        """The key named `kid` (or the only key, for a token that names none).

        Raises `KeyUnknown` when the set, read again if allowed, holds no such key, and
        `LlmeshError` SERVICE_UNREACHABLE when no key set could be read at all.
        """
        expired = not self._loaded or self._clock() >= self._expires
        if expired and not (self._loaded and self._lock.locked()):  # a read under way: old keys
            await self._refresh(stale=True)
        found = self._pick(kid)
        if found is None:
            await self._refresh(stale=False)  # a rotated key: read the set again, rate-limited
            found = self._pick(kid)
        if found is None:
            raise KeyUnknown()
        return found

    def current(self) -> int | None:
        """The generation of the keys held while they are within their cache time, else None."""
        if self._loaded and self._clock() < self._expires:
            return self.generation
        return None

    def _pick(self, kid: str | None) -> PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _refresh(self, *, stale: bool) -> None:
        """Read the set again unless it was read within ``jwks_refresh_seconds`` (`stale`:
        because the cached copy expired, rather than for an unknown key id)."""
        async with self._lock:
            now = self._clock()
            if stale and self._loaded and now < self._expires:
                return  # another call refreshed it while this one waited
            if now - self._last_fetch < self._issuer.jwks_refresh_seconds:
                if not self._loaded:
                    raise self._unreachable()
                return
            self._last_fetch = now
            self.fetches += 1
            try:
                keys = parse_jwks(await self._read(), self._issuer.algorithms)
            except Exception as exc:  # a fetch or a document that failed: keep the old keys
                log.warning(
                    "cannot read the JWKS of issuer %s: %s", self._issuer.issuer, type(exc).__name__
                )
                if not self._loaded:
                    raise self._unreachable() from None
                return
            self._keys = keys
            self._loaded = True
            self.generation += 1
            self._expires = now + self._issuer.jwks_cache_seconds

    def _unreachable(self) -> LlmeshError:
        return LlmeshError(
            Reason.SERVICE_UNREACHABLE,
            f"the signing keys of token issuer {self._issuer.issuer} cannot be read; "
            "try again later",
            retry_after=self._issuer.jwks_refresh_seconds,
        )
