"""Usage totals: grouping, filters and sort order, identical in both stores."""

from __future__ import annotations

from typing import Any

import pytest

from llmesh.services.core import CallStatus
from llmesh.services.ledger import UsageTotalRow
from tests.ledger.conftest import RecordFactory

MIDNIGHT = 1_762_128_000.0  # 2025-11-03T00:00:00Z


@pytest.fixture
async def filled(store: Any, record: RecordFactory) -> Any:
    await store.write(
        [
            # acme, key-1, gpt-4o-mini: two on 2025-11-02, one on 2025-11-03
            record(1, ts=MIDNIGHT - 10, cache_read_tokens=50, cache_savings_usd=0.25),
            record(
                2, ts=MIDNIGHT - 0.001, status=CallStatus.ERROR, error_reason="STREAM_INTERRUPTED"
            ),
            record(3, ts=MIDNIGHT, output_tokens=30, cost_usd=0.002),
            # acme, key-2, claude: a cancelled call and a response-cache hit
            record(
                4,
                ts=MIDNIGHT + 60,
                key_id="key-2",
                provider="anthropic",
                model="claude-haiku-4-5",
                status=CallStatus.CANCELLED,
                cache_write_tokens=7,
                reasoning_tokens=5,
            ),
            record(
                5,
                ts=MIDNIGHT + 120,
                key_id="key-2",
                provider="anthropic",
                model="claude-haiku-4-5",
                input_tokens=0,
                output_tokens=0,
                cost_usd=0.0,
                cache_hit=True,
                cache_savings_usd=0.5,
            ),
            # globex: one call that never reached a provider
            record(
                6,
                ts=MIDNIGHT + 3600,
                tenant="globex",
                key_id="key-9",
                provider="",
                model="",
                input_tokens=0,
                output_tokens=0,
                cost_usd=0.0,
                status=CallStatus.ERROR,
                error_reason="BUDGET_EXCEEDED",
            ),
        ]
    )
    return store


async def test_one_total(filled: Any) -> None:
    [total] = await filled.totals([])
    assert total == UsageTotalRow(
        requests=5,  # the call that reached no provider is not a request...
        failed=3,  # ...but it failed
        input_tokens=400,
        output_tokens=90,
        cache_read_tokens=50,
        cache_write_tokens=7,
        reasoning_tokens=5,
        cost_usd=pytest.approx(0.001 * 3 + 0.002),  # type: ignore[arg-type]
        cache_savings_usd=0.75,
        prompt_cache_savings_usd=0.25,  # call 1's prompt-cache reads
        response_cache_savings_usd=0.5,  # call 5, served from the response cache
    )


async def test_savings_apart_per_group(filled: Any) -> None:
    rows = await filled.totals(["model"])
    assert [
        (r.model, r.cache_savings_usd, r.prompt_cache_savings_usd, r.response_cache_savings_usd)
        for r in rows
    ] == [
        ("", 0.0, 0.0, 0.0),
        ("anthropic/claude-haiku-4-5", 0.5, 0.0, 0.5),
        ("openai/gpt-4o-mini", 0.25, 0.25, 0.0),
    ]


async def test_group_by_tenant_and_day(filled: Any) -> None:
    rows = await filled.totals(["tenant", "day"])
    assert [(r.tenant, r.day, r.requests, r.failed) for r in rows] == [
        ("acme", "2025-11-02", 2, 1),
        ("acme", "2025-11-03", 3, 1),
        ("globex", "2025-11-03", 0, 1),
    ]
    assert all(r.key_id == "" and r.model == "" for r in rows)


async def test_group_by_model_and_key(filled: Any) -> None:
    rows = await filled.totals(["model"])
    assert [(r.model, r.requests, r.input_tokens) for r in rows] == [
        ("", 0, 0),
        ("anthropic/claude-haiku-4-5", 2, 100),
        ("openai/gpt-4o-mini", 3, 300),
    ]
    rows = await filled.totals(["key", "model"])
    assert [(r.key_id, r.model) for r in rows] == [
        ("key-1", "openai/gpt-4o-mini"),
        ("key-2", "anthropic/claude-haiku-4-5"),
        ("key-9", ""),
    ]
    # the order of the groupings is the sort order; repeats are ignored
    rows = await filled.totals(["day", "tenant", "day"])
    assert [(r.day, r.tenant) for r in rows] == [
        ("2025-11-02", "acme"),
        ("2025-11-03", "acme"),
        ("2025-11-03", "globex"),
    ]


async def test_filters(filled: Any) -> None:
    [total] = await filled.totals([], since=MIDNIGHT)  # since is inclusive
    assert (total.requests, total.failed) == (3, 2)
    [total] = await filled.totals([], until=MIDNIGHT)  # until is exclusive
    assert (total.requests, total.failed) == (2, 1)
    [total] = await filled.totals([], since=MIDNIGHT, until=MIDNIGHT + 61)
    assert total.requests == 2
    rows = await filled.totals(["tenant"], tenant="globex")
    assert [(r.tenant, r.failed) for r in rows] == [("globex", 1)]
    assert await filled.totals(["tenant"], tenant="nobody") == []


async def test_empty_ledger(store: Any) -> None:
    assert await store.totals([]) == [UsageTotalRow()]
    assert await store.totals(["tenant", "model"]) == []


async def test_unknown_grouping(store: Any) -> None:
    with pytest.raises(ValueError, match="cannot group usage by 'user'"):
        await store.totals(["user"])
