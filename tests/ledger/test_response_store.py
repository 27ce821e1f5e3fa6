"""Stored responses in the ledger database: scoped to a tenant, gone once expired, pruned."""

from __future__ import annotations

from typing import Any

from llmesh.services.ledger import StoredResponse

NOW = 1_800_000_000.0


def _stored(response_id: str, tenant: str = "acme", ttl: float = 60.0) -> StoredResponse:
    body = {"response": {"id": response_id, "output": [{"type": "message"}]}, "note": "a\x00b"}
    return StoredResponse(response_id, tenant, NOW, NOW + ttl, body)


async def test_a_stored_response_reads_back_for_its_tenant_only(store: Any) -> None:
    await store.put_response(_stored("resp_1"))
    got = await store.get_response("resp_1", "acme", NOW)
    assert got is not None
    assert got.body["response"] == {"id": "resp_1", "output": [{"type": "message"}]}
    assert (got.tenant, got.created_at, got.expires_at) == ("acme", NOW, NOW + 60)
    assert await store.get_response("resp_1", "other", NOW) is None
    assert await store.delete_response("resp_1", "other") is False
    assert await store.get_response("resp_1", "acme", NOW) is not None
    assert await store.delete_response("resp_1", "acme") is True
    assert await store.get_response("resp_1", "acme", NOW) is None


async def test_an_expired_response_reads_as_absent_and_is_pruned(store: Any) -> None:
    await store.put_response(_stored("resp_old", ttl=10))
    await store.put_response(_stored("resp_new", ttl=100))
    assert await store.get_response("resp_old", "acme", NOW + 5) is not None
    assert await store.get_response("resp_old", "acme", NOW + 10) is None
    assert await store.prune_responses(NOW + 50) == 1
    assert await store.get_response("resp_old", "acme", NOW) is None  # the row is gone
    assert await store.get_response("resp_new", "acme", NOW + 50) is not None


async def test_storing_an_id_again_replaces_it(store: Any) -> None:
    await store.put_response(_stored("resp_1"))
    await store.put_response(_stored("resp_1", tenant="acme", ttl=500))
    got = await store.get_response("resp_1", "acme", NOW + 400)
    assert got is not None and got.expires_at == NOW + 500
