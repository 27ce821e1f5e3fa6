"""Turn a call's metadata into the `Principal` it acts for, or refuse it.

Servers call `Authenticator.authenticate` first thing in every RPC with the invocation
metadata; the gateway forwards the HTTP ``authorization`` header under the same name. The
bearer credential is an llmesh API key (``llm_...``) or, when issuers are configured, a JWT
(`TokenVerifier`). This module imports no grpc: metadata is any sequence of
``(key, value)`` pairs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from llmesh.services.auth.keys import KEY_PREFIX, Principal, check_tenant, parse_key
from llmesh.services.auth.store import DEFAULT_CACHE_TTL, KeyStore
from llmesh.services.auth.tokens import TokenVerifier, looks_like_jwt
from llmesh.services.common.errors import LlmeshError, Reason, invalid

log = logging.getLogger(__name__)

AUTHORIZATION = "authorization"
"""The metadata key carrying ``Bearer <key>``."""

TENANT_HEADER = "x-llmesh-tenant"
"""The metadata key naming the tenant when authentication is off."""

DEFAULT_TENANT = "default"
"""The tenant of calls that name none while authentication is off."""

Metadata = Sequence[tuple[str, str | bytes]]
"""gRPC invocation metadata: ``(key, value)`` pairs, binary values as bytes."""


def _values(metadata: Metadata, name: str) -> list[str | None]:
    """Every value of ``name`` (case-insensitive); None for a value that is not text."""
    found: list[str | None] = []
    for key, value in metadata:
        if key.lower() != name:
            continue
        if isinstance(value, bytes):
            try:
                found.append(value.decode("ascii"))
            except UnicodeDecodeError:
                found.append(None)
        else:
            found.append(value)
    return found


def _unauthenticated(message: str) -> LlmeshError:
    return LlmeshError(Reason.UNAUTHENTICATED, message)


def bearer_token(metadata: Metadata) -> str:
    """The key of the single ``authorization: Bearer <key>`` entry, or UNAUTHENTICATED.

    Messages describe what is wrong without repeating any of the header's value.
    """
    values = _values(metadata, AUTHORIZATION)
    if not values:
        raise _unauthenticated(
            "missing API key: send the header 'authorization: Bearer <llmesh API key>'"
        )
    if len(values) > 1:
        raise _unauthenticated("more than one authorization header: send exactly one")
    value = values[0]
    parts = value.split() if value is not None else []
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise _unauthenticated("malformed authorization header: expected 'Bearer <llmesh API key>'")
    return parts[1]


class Authenticator:
    """Decides who each call acts for, with or without API keys.

    With ``on_when_keys_exist``, authentication that starts off switches on by itself, for
    good, once the store holds a key: the store is asked at most every
    ``key_check_interval`` seconds while no key exists. A running server therefore starts
    refusing calls without a key within that time of ``llmesh keys create``, no restart
    needed. Revoking keys never switches it off again (revoked keys still count).

    With `tokens` (issuers of bearer tokens configured), authentication is always on: a call
    sends an API key or a JWT from one of the issuers.
    """

    def __init__(
        self,
        store: KeyStore | None,
        *,
        required: bool,
        on_when_keys_exist: bool = False,
        key_check_interval: float = DEFAULT_CACHE_TTL,
        tokens: TokenVerifier | None = None,
    ) -> None:
        required = required or tokens is not None
        if required and store is None and tokens is None:
            raise ValueError("authentication is required but no key store was given")
        if on_when_keys_exist and store is None:
            raise ValueError("watching for API keys needs a key store")
        self._store = store
        self._tokens = tokens
        self._required = required
        self._watch = on_when_keys_exist and not required
        self._check_interval = key_check_interval
        self._next_check = 0.0

    def __repr__(self) -> str:
        tokens = "" if self._tokens is None else f", tokens={self._tokens!r}"
        return f"Authenticator(store={self._store!r}{tokens}, required={self._required})"

    @property
    def required(self) -> bool:
        """True when every call must present a valid API key."""
        return self._required

    async def _switch_on_if_keys_exist(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self._check_interval  # one check at a time, not one per call
        assert self._store is not None
        try:
            found = await self._store.has_keys()
        except Exception:  # the store is down: serve as before and ask again next interval
            log.warning("cannot tell whether API keys exist; asking again later", exc_info=True)
            return
        if found:
            self._required = True
            self._watch = False
            log.warning(
                "API keys exist now: authentication is on, calls must send "
                "'authorization: Bearer <key>'"
            )

    async def authenticate(self, metadata: Metadata) -> Principal:
        """The principal of a call, from its metadata.

        With authentication off, the tenant is ``x-llmesh-tenant`` or ``default``. With it
        on, a missing, malformed, unknown, wrong or revoked key is UNAUTHENTICATED (a refused
        JWT too, with a ``TOKEN_*`` reason), and an ``x-llmesh-tenant`` naming another tenant
        than the key's or token's is PERMISSION_DENIED.
        """
        tenant = self._tenant_header(metadata)
        if self._watch:
            await self._switch_on_if_keys_exist()
        if not self._required:
            return Principal(tenant=tenant or DEFAULT_TENANT, key_id="")
        key = bearer_token(metadata)
        if self._tokens is not None and not key.startswith(KEY_PREFIX) and looks_like_jwt(key):
            holder = await self._tokens.verify(key)
            if tenant is not None and tenant != holder.tenant:
                raise LlmeshError(
                    Reason.PERMISSION_DENIED,
                    f"the bearer token of {holder.key_id} does not act for tenant {tenant!r}",
                    metadata={"key_id": holder.key_id, "tenant": tenant},
                )
            return holder
        parsed = parse_key(key)
        if parsed is None:
            raise _unauthenticated(
                f"malformed API key: llmesh keys read '{KEY_PREFIX}<key_id>_<secret>'"
                + (" (or send a JWT from a configured issuer)" if self._tokens else "")
            )
        key_id = parsed[0]
        if self._store is None:
            raise _unauthenticated("API keys are not accepted here: send a JWT")
        principal = await self._store.verify(key)
        if principal is None:
            log.info("refused API key %s: unknown, revoked or wrong secret", key_id)
            raise LlmeshError(
                Reason.UNAUTHENTICATED,
                f"invalid API key {key_id}: unknown, revoked, or its secret does not match",
                metadata={"key_id": key_id},
            )
        if tenant is not None and tenant != principal.tenant:
            raise LlmeshError(
                Reason.PERMISSION_DENIED,
                f"API key {key_id} does not act for tenant {tenant!r}",
                metadata={"key_id": key_id, "tenant": tenant},
            )
        return principal

    @staticmethod
    def _tenant_header(metadata: Metadata) -> str | None:
        values = _values(metadata, TENANT_HEADER)
        if not values:
            return None
        if len(values) > 1 or values[0] is None:
            raise invalid(TENANT_HEADER, "send one text value")
        tenant = values[0].strip()
        if not tenant:
            return None
        problem = check_tenant(tenant)
        if problem:
            raise invalid(TENANT_HEADER, problem)
        return tenant
