"""The latest records (`LedgerStore.recent`): newest first, capped, per tenant; both stores."""

from __future__ import annotations

from typing import Any

from tests.ledger.conftest import RecordFactory


async def test_recent_lists_the_newest_first_up_to_the_limit(
    store: Any, record: RecordFactory
) -> None:
    await store.write([record(n) for n in (3, 1, 4, 2)])
    latest = await store.recent(3)
    assert [r.request_id for r in latest] == ["req-000004", "req-000003", "req-000002"]
    assert latest[0].attempts == [] and latest[0].cost_usd == 0.001


async def test_recent_keeps_only_the_tenant_asked_for(store: Any, record: RecordFactory) -> None:
    await store.write(
        [record(1), record(2, tenant="globex"), record(3), record(4, tenant="globex")]
    )
    assert [r.request_id for r in await store.recent(10, "acme")] == ["req-000003", "req-000001"]
    assert [r.tenant for r in await store.recent(10)] == ["globex", "acme", "globex", "acme"]
    assert await store.recent(10, "nobody") == []


async def test_recent_reads_the_attempt_trail_back(store: Any, record: RecordFactory) -> None:
    trail = [{"target": "openai/gpt-4o-mini", "outcome": "failed", "latency_ms": 3.5}]
    await store.write([record(1, attempts=trail)])
    [found] = await store.recent(1)
    assert found.attempts == trail
