"""Turn a call's metadata into the `Principal` it acts for, or refuse it.

Servers call `Authenticator.authenticate` first thing in every RPC with the invocation
metadata; the gateway forwards the HTTP ``authorization`` header under the same name. This
module imports no grpc: metadata is any sequence of ``(key, value)`` pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from services.auth.keys import KEY_PREFIX, Principal, check_tenant, parse_key
from services.auth.store import KeyStore
from services.common.errors import LlmeshError, Reason, invalid

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
    """Decides who each call acts for, with or without API keys."""

    def __init__(self, store: KeyStore | None, *, required: bool) -> None:
        if required and store is None:
            raise ValueError("authentication is required but no key store was given")
        self._store = store
        self._required = required

    def __repr__(self) -> str:
        return f"Authenticator(store={self._store!r}, required={self._required})"

    @property
    def required(self) -> bool:
        """True when every call must present a valid API key."""
        return self._required

    async def authenticate(self, metadata: Metadata) -> Principal:
        """The principal of a call, from its metadata.

        With authentication off, the tenant is ``x-llmesh-tenant`` or ``default``. With it
        on, a missing, malformed, unknown, wrong or revoked key is UNAUTHENTICATED, and an
        ``x-llmesh-tenant`` naming another tenant than the key's is PERMISSION_DENIED.
        """
        tenant = self._tenant_header(metadata)
        if not self._required:
            return Principal(tenant=tenant or DEFAULT_TENANT, key_id="")
        assert self._store is not None
        key = bearer_token(metadata)
        parsed = parse_key(key)
        if parsed is None:
            raise _unauthenticated(
                f"malformed API key: llmesh keys read '{KEY_PREFIX}<key_id>_<secret>'"
            )
        key_id = parsed[0]
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
