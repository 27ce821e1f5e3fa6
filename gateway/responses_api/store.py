"""Stored responses on the gateway: the ledger's response table, scoped to the caller's tenant.

The gateway checks no key for chat calls (the orchestrator does), but a stored response must
only be read by its own tenant, so `ResponseStorage` resolves the caller's tenant itself
with the mesh's key store, exactly as the orchestrator does (`Authenticator`): with API keys,
the key's tenant (a wrong key is a 401), or a JWT's when issuers are configured; without
any, ``x-llmesh-tenant`` or ``default``.
Expired rows read as absent and are pruned at most once an hour, when a response is stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from llmesh.gateway.settings import GatewaySettings
from llmesh.services.auth import Authenticator, KeyStore, TokenVerifier, open_key_store
from llmesh.services.auth.authenticator import AUTHORIZATION, TENANT_HEADER
from llmesh.services.common.auth_settings import JwtIssuer
from llmesh.services.ledger import ResponseStore, StoredResponse, open_response_store

__all__ = ["ResponseStorage"]

PRUNE_INTERVAL = 3600.0
"""Seconds between two prunes of expired responses."""


class ResponseStorage:
    """The response table and the authenticator naming the tenant that owns each row.

    Nothing is opened until the first request that needs it, so a gateway that never serves
    ``/v1/responses`` never touches the database.
    """

    def __init__(
        self,
        store: ResponseStore,
        key_store_url: str,
        ttl: float,
        jwt_issuers: tuple[JwtIssuer, ...] = (),
    ) -> None:
        self.store = store
        self.ttl = ttl
        """Seconds a response is kept."""
        self.next_prune = 0.0
        self._key_store_url = key_store_url
        self._jwt_issuers = jwt_issuers
        self._keys: KeyStore | None = None
        self._authenticator: Authenticator | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def create(cls, settings: GatewaySettings) -> ResponseStorage | None:
        """The storage `settings` ask for (unopened), or None when response storage is off."""
        if not settings.response_store_url or settings.response_ttl <= 0:
            return None
        store = open_response_store(settings.response_store_url)
        return cls(store, settings.key_store_url, settings.response_ttl, settings.jwt_issuers)

    async def _auth(self) -> Authenticator:
        async with self._lock:
            if self._authenticator is None:
                keys = await open_key_store(self._key_store_url)
                try:
                    has_keys = await keys.has_keys()
                except BaseException:
                    await keys.aclose()
                    raise
                self._keys = keys
                self._authenticator = Authenticator(
                    keys,
                    required=has_keys,
                    on_when_keys_exist=True,
                    tokens=TokenVerifier.from_config(self._jwt_issuers),
                )
            return self._authenticator

    async def tenant(self, headers: Mapping[str, str]) -> str:
        """The tenant of a request (UNAUTHENTICATED / PERMISSION_DENIED as the orchestrator)."""
        metadata = [(k, headers[k]) for k in (AUTHORIZATION, TENANT_HEADER) if k in headers]
        return (await (await self._auth()).authenticate(metadata)).tenant

    async def load(self, response_id: str, tenant: str) -> StoredResponse | None:
        """The live response `response_id` of `tenant`."""
        return await self.store.get_response(response_id, tenant, time.time())

    async def save(self, response_id: str, tenant: str, body: dict[str, Any]) -> None:
        """Store a response for `ttl` seconds (and prune expired ones now and then)."""
        now = time.time()
        await self.store.put_response(
            StoredResponse(response_id, tenant, now, now + self.ttl, body)
        )
        if now >= self.next_prune:
            self.next_prune = now + PRUNE_INTERVAL
            await self.store.prune_responses(now)

    async def delete(self, response_id: str, tenant: str) -> bool:
        """Delete the response `response_id` of `tenant`; whether it existed."""
        return await self.store.delete_response(response_id, tenant)

    async def aclose(self) -> None:
        """Close the response table's and the key store's connections."""
        await self.store.aclose()
        if self._keys is not None:
            await self._keys.aclose()
