"""Deciding at start-up whether a server authenticates its callers, from the key store.

The orchestrator builds this into its call pipeline (`llmesh.services.orchestrator.assembly`);
the processor and the gateway use `open_access` / `check_listener` directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmesh.services.auth.authenticator import Authenticator
from llmesh.services.auth.bind import check_bind
from llmesh.services.auth.store import KeyStore, open_key_store
from llmesh.services.auth.tokens import TokenVerifier
from llmesh.services.common.auth_settings import JwtIssuer
from llmesh.services.common.exposure import is_loopback


@dataclass
class Access:
    """A server's authenticator and the key store it reads (None when it reads none)."""

    authenticator: Authenticator
    store: KeyStore | None

    async def aclose(self) -> None:
        """Close the key store, if one is open."""
        if self.store is not None:
            await self.store.aclose()


async def open_access(
    service: str,
    bind: str,
    database_url: str,
    *,
    allow_unauthenticated: bool,
    jwt_issuers: Sequence[JwtIssuer] = (),
) -> Access:
    """Apply the startup rule (`check_bind`) for `service` on `bind` and build its authenticator.

    With keys in the store, every call needs one. With none, authentication is off until
    a key is created (the authenticator watches the store, so no restart is needed). With
    `jwt_issuers`, it is on from the start: every call needs a key or a token.
    """
    tokens = TokenVerifier.from_config(jwt_issuers)
    store = await open_key_store(database_url)
    try:
        has_keys = await store.has_keys()
        check_bind(bind, has_keys or tokens is not None, allow_unauthenticated, service=service)
    except BaseException:
        await store.aclose()
        raise
    authenticator = Authenticator(store, required=has_keys, on_when_keys_exist=True, tokens=tokens)
    return Access(authenticator, store)


async def check_listener(
    service: str,
    bind: str,
    database_url: str,
    *,
    allow_unauthenticated: bool,
    jwt_issuers: Sequence[JwtIssuer] = (),
) -> None:
    """The startup rule for a server that leaves authentication to the services behind it.

    A loopback bind, or any with token issuers configured, needs no look at the key store;
    any other opens it to count the keys.
    """
    if is_loopback(bind) or jwt_issuers:
        return
    access = await open_access(
        service, bind, database_url, allow_unauthenticated=allow_unauthenticated
    )
    await access.aclose()
