"""Both template stores: immutable versions, weights, resolution, statistics from the
ledger's call rows (written by the ledger's own store into the same database)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.usage import CallStatus
from llmesh.services.ledger import PostgresStore, SqliteStore
from llmesh.services.templates import (
    StatsQuery,
    TemplateRef,
    resolve,
    version_from_mapping,
)
from tests.ledger.conftest import RecordFactory

FILE = {
    "name": "support",
    "description": "first",
    "variables": {"product": {"description": "what"}, "tone": {"default": "kind"}},
    "system": "About {{ product }}, {{ tone }}.",
    "messages": [{"role": "user", "content": "{{ product }}?"}],
    "parameters": {"temperature": 0.5, "stop": ["END"]},
}


async def test_versions_are_numbered_and_never_change(templates: Any) -> None:
    first = await templates.create(version_from_mapping(FILE))
    second = await templates.create(version_from_mapping({**FILE, "description": "second"}))
    assert (first.version, second.version) == (1, 2)
    assert first.created_at > 0
    assert await templates.get("support", 1) == first
    assert await templates.get("support") == second
    assert await templates.versions("support") == [1, 2]
    assert (await templates.get("support", 1)).description == "first"
    assert await templates.get("support", 3) is None
    assert await templates.get("nothing") is None
    assert first.variables[1].default == "kind"
    assert first.parameters.stop == ("END",)
    [summary] = await templates.summaries()
    assert (summary.name, summary.latest_version, summary.description) == ("support", 2, "second")


async def test_concurrent_creates_get_distinct_numbers(templates: Any) -> None:
    made = await asyncio.gather(*(templates.create(version_from_mapping(FILE)) for _ in range(8)))
    assert sorted(v.version for v in made) == list(range(1, 9))


async def test_weights_are_validated_and_replaced(templates: Any) -> None:
    with pytest.raises(LlmeshError) as caught:
        await templates.set_weights("support", [(1, 1.0)])
    assert caught.value.reason is Reason.TEMPLATE_NOT_FOUND
    await templates.create(version_from_mapping(FILE))
    await templates.create(version_from_mapping(FILE))
    for bad in ([(3, 1.0)], [(1, 0.0)], [(1, 1.0), (1, 2.0)], [(1, float("nan"))]):
        with pytest.raises(LlmeshError) as caught:
            await templates.set_weights("support", bad)
        assert caught.value.reason is Reason.INVALID_REQUEST
    assert await templates.set_weights("support", [(2, 3.0), (1, 1.0)]) == [(1, 1.0), (2, 3.0)]
    assert await templates.weights("support") == [(1, 1.0), (2, 3.0)]
    assert (await templates.summaries())[0].weights == ((1, 1.0), (2, 3.0))
    assert await templates.set_weights("support", []) == []
    assert await templates.weights("support") == []


async def test_resolve_pins_weighs_and_falls_back_to_the_latest(templates: Any) -> None:
    for _ in range(3):
        await templates.create(version_from_mapping(FILE))
    assert (await resolve(templates, TemplateRef("support"))).version == 3
    assert (await resolve(templates, TemplateRef("support", 1))).version == 1
    await templates.set_weights("support", [(2, 1.0)])
    assert (await resolve(templates, TemplateRef("support"))).version == 2
    await templates.set_weights("support", [(1, 1.0), (3, 1.0)])
    sticky = {(await resolve(templates, TemplateRef("support"), "t", "bob")).version for _ in "xyz"}
    assert len(sticky) == 1
    with pytest.raises(LlmeshError) as caught:
        await resolve(templates, TemplateRef("support", 9))
    assert caught.value.reason is Reason.TEMPLATE_NOT_FOUND
    assert caught.value.metadata == {"template": "support", "version": "9"}
    with pytest.raises(LlmeshError) as caught:
        await resolve(templates, TemplateRef("nothing"))
    assert caught.value.reason is Reason.TEMPLATE_NOT_FOUND


async def test_stats_come_from_the_ledger_rows(
    templates: Any, database: tuple[str, Any], record: RecordFactory
) -> None:
    kind, where = database
    ledger: Any = (
        SqliteStore(where) if kind == "sqlite" else PostgresStore(*where[:1], schema=where[1])
    )
    try:
        rows = [
            record(
                1,
                template="support",
                template_version=1,
                duration_ms=100.0,
                ttft_ms=10.0,
                input_tokens=5,
                output_tokens=7,
                cost_usd=0.5,
                ts=1000.0,
            ),
            record(
                2,
                template="support",
                template_version=1,
                duration_ms=300.0,
                ttft_ms=None,
                input_tokens=1,
                output_tokens=1,
                cost_usd=0.25,
                ts=2000.0,
                status=CallStatus.ERROR,
                error_reason="UPSTREAM_TIMEOUT",
            ),
            record(
                3,
                template="support",
                template_version=2,
                duration_ms=50.0,
                ttft_ms=20.0,
                ts=3000.0,
                tenant="other",
            ),
            record(4, template="other", template_version=1, ts=1000.0),
            record(5, ts=1000.0),
        ]
        await ledger.write(rows)
        assert (await ledger.get(rows[0].request_id)) == rows[0]
    finally:
        await ledger.aclose()
    v1, v2 = await templates.stats(StatsQuery("support"))
    assert (v1.version, v1.calls, v1.errors) == (1, 2, 1)
    assert (v1.input_tokens, v1.output_tokens, v1.cost_usd) == (6, 8, 0.75)
    assert (v1.latency_p50_ms, v1.latency_mean_ms) == (200.0, 200.0)
    assert (v1.ttft_p50_ms, v1.ttft_mean_ms) == (10.0, 10.0)
    assert (v2.version, v2.calls, v2.errors, v2.ttft_mean_ms) == (2, 1, 0, 20.0)
    [only] = await templates.stats(StatsQuery("support", since=1500.0, until=2500.0))
    assert (only.version, only.calls) == (1, 1)
    [theirs] = await templates.stats(StatsQuery("support", tenant="other"))
    assert theirs.version == 2
    assert await templates.stats(StatsQuery("nothing")) == []


async def test_medians_of_odd_and_even_counts(
    templates: Any, database: tuple[str, Any], record: RecordFactory
) -> None:
    kind, where = database
    ledger: Any = (
        SqliteStore(where) if kind == "sqlite" else PostgresStore(where[0], schema=where[1])
    )
    durations = {1: [5.0, 1.0, 100.0], 2: [8.0, 2.0, 4.0, 50.0]}
    try:
        await ledger.write(
            [
                record(10 * v + i, template="t", template_version=v, duration_ms=d, ttft_ms=d / 2)
                for v, ds in durations.items()
                for i, d in enumerate(ds)
            ]
        )
    finally:
        await ledger.aclose()
    v1, v2 = await templates.stats(StatsQuery("t"))
    assert (v1.latency_p50_ms, v1.ttft_p50_ms, v1.latency_mean_ms) == (5.0, 2.5, 106.0 / 3)
    assert (v2.latency_p50_ms, v2.ttft_p50_ms, v2.latency_mean_ms) == (6.0, 3.0, 16.0)
