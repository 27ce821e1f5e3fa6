"""The listings' protobuf mapping: targets with their breakers, usage queries and totals."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from llmesh.services.core.target import Target
from llmesh.services.ledger import UsageTotalRow
from llmesh.services.orchestrator.listing_convert import (
    models_to_proto,
    targets_to_proto,
    usage_query_from_proto,
    usage_totals_to_proto,
)
from llmesh.services.orchestrator.resilience import BreakerView
from llmesh.services.orchestrator.routing import ModelEntry
from llmesh.v1 import orchestrator_pb2

ENTRIES = [
    ModelEntry("fast", Target("openai", "mini"), alias_for="openai/mini"),
    ModelEntry("openai/mini", Target("openai", "mini")),
]


class Queues:
    def in_flight(self, target: str) -> int:
        return len(target)

    def queued(self, target: str) -> int:
        return 1


def test_models_list_every_entry() -> None:
    models = models_to_proto(ENTRIES).models
    assert [(m.name, m.provider, m.provider_model, m.alias_for) for m in models] == [
        ("fast", "openai", "mini", "openai/mini"),
        ("openai/mini", "openai", "mini", ""),
    ]


def test_targets_merge_breakers_with_listed_models_sorted() -> None:
    views = [BreakerView("anthropic/haiku", "open", 3, 1.5)]
    targets = targets_to_proto(views, ENTRIES, Queues()).targets
    assert [t.name for t in targets] == ["anthropic/haiku", "openai/mini"]
    opened, unseen = targets
    assert opened.breaker_state == orchestrator_pb2.BREAKER_STATE_OPEN
    assert opened.failure_count == 3
    assert opened.time_to_half_open.ToMilliseconds() == 1500
    assert (opened.in_flight, opened.queued) == (len("anthropic/haiku"), 1)
    assert unseen.breaker_state == orchestrator_pb2.BREAKER_STATE_CLOSED
    assert not unseen.HasField("time_to_half_open")


def test_a_usage_query_keeps_known_groupings_and_exact_times() -> None:
    request = orchestrator_pb2.GetUsageRequest(
        group_by=[orchestrator_pb2.USAGE_GROUPING_DAY, orchestrator_pb2.USAGE_GROUPING_TENANT],
        since=timestamp_pb2.Timestamp(seconds=100, nanos=500_000_000),
        tenant="acme",
    )
    query = usage_query_from_proto(request)
    assert query.groups == ("day", "tenant")
    assert query.since == 100.5 and query.until is None
    assert query.tenant == "acme"
    assert usage_query_from_proto(orchestrator_pb2.GetUsageRequest()).since is None


def test_usage_totals_carry_every_count() -> None:
    row = UsageTotalRow(
        tenant="acme",
        requests=2,
        failed=1,
        input_tokens=5,
        cost_usd=0.25,
        cache_savings_usd=0.75,
        prompt_cache_savings_usd=0.25,
        response_cache_savings_usd=0.5,
    )
    (total,) = usage_totals_to_proto([row]).totals
    assert (total.tenant, total.key_id, total.requests, total.failed) == ("acme", "", 2, 1)
    assert total.usage.input_tokens == 5 and total.cost_usd == 0.25
    assert (
        total.cache_savings_usd,
        total.prompt_cache_savings_usd,
        total.response_cache_savings_usd,
    ) == (0.75, 0.25, 0.5)
