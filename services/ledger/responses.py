"""Stored responses: what a stateful API (OpenAI's Responses API) keeps between turns.

A stored response is one JSON body (the surface decides its shape) under a response id,
owned by one tenant and kept until ``expires_at``. Every read names the tenant, so a caller
never sees another tenant's response, and an expired row reads as absent before it is
pruned. The table is created by the ledger's migrations (`llmesh.services.ledger.schema`)
in the same database as the usage records, SQLite or PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

__all__ = [
    "RESPONSES_TABLE",
    "ResponseStore",
    "StoredResponse",
    "delete_sql",
    "prune_sql",
    "put_sql",
    "select_sql",
    "stored_from_row",
    "stored_to_row",
]

RESPONSES_TABLE = "stored_responses"
"""The table holding one row per stored response."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One stored response."""

    response_id: str
    """The id the API answered with (``resp_...``)."""
    tenant: str
    """The tenant that created it; only this tenant reads or deletes it."""
    created_at: float
    """Unix seconds."""
    expires_at: float
    """Unix seconds after which it reads as absent (and is pruned)."""
    body: dict[str, Any]
    """The surface's JSON: the response object and the conversation items it continues."""


class ResponseStore(Protocol):
    """Where stored responses live (both ledger stores implement it)."""

    async def put_response(self, stored: StoredResponse) -> None:
        """Store `stored`, replacing a row with the same id."""
        ...

    async def get_response(
        self, response_id: str, tenant: str, now: float
    ) -> StoredResponse | None:
        """The response `response_id` of `tenant`, or None when absent or expired at `now`."""
        ...

    async def delete_response(self, response_id: str, tenant: str) -> bool:
        """Delete the response `response_id` of `tenant`; whether a row went."""
        ...

    async def prune_responses(self, now: float) -> int:
        """Delete every response expired at `now`; how many went."""
        ...

    async def aclose(self) -> None:
        """Release the store's connections (idempotent)."""
        ...


_COLUMNS = ("response_id", "tenant", "created_at", "expires_at", "body")


def put_sql(ph: Sequence[str]) -> str:
    """The upsert of one row of `_COLUMNS`, with the dialect's placeholders `ph`."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
    return (
        f"INSERT INTO {RESPONSES_TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join(ph)}) "
        f"ON CONFLICT (response_id) DO UPDATE SET {updates}"
    )


def select_sql(ph: Sequence[str]) -> str:
    """One live row by id and tenant (placeholders: id, tenant, now)."""
    return (
        f"SELECT {', '.join(_COLUMNS)} FROM {RESPONSES_TABLE} "
        f"WHERE response_id = {ph[0]} AND tenant = {ph[1]} AND expires_at > {ph[2]}"
    )


def delete_sql(ph: Sequence[str]) -> str:
    """Delete one row by id and tenant (placeholders: id, tenant)."""
    return f"DELETE FROM {RESPONSES_TABLE} WHERE response_id = {ph[0]} AND tenant = {ph[1]}"


def prune_sql(ph: str) -> str:
    """Delete the rows expired at the placeholder's time."""
    return f"DELETE FROM {RESPONSES_TABLE} WHERE expires_at <= {ph}"


def stored_to_row(stored: StoredResponse) -> tuple[Any, ...]:
    """A stored response as a row of `_COLUMNS`, the body as JSON text."""
    return (
        stored.response_id,
        stored.tenant,
        float(stored.created_at),
        float(stored.expires_at),
        orjson.dumps(stored.body).decode(),
    )


def stored_from_row(row: Sequence[Any]) -> StoredResponse:
    """The stored response a row of `_COLUMNS` holds."""
    response_id, tenant, created_at, expires_at, body = row
    return StoredResponse(
        response_id,
        tenant,
        float(created_at),
        float(expires_at),
        orjson.loads(body) if isinstance(body, str | bytes) else body,
    )
