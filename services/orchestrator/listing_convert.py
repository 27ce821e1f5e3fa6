"""Protobuf <-> domain mapping for the orchestrator's listings: models, targets, usage."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from google.protobuf import timestamp_pb2

from llmesh.services.ledger import UsageTotalRow
from llmesh.services.orchestrator.resilience import BreakerView
from llmesh.services.orchestrator.routing import ModelEntry
from llmesh.v1 import chat_pb2, orchestrator_pb2

_BREAKER_STATES = {
    "closed": orchestrator_pb2.BREAKER_STATE_CLOSED,
    "open": orchestrator_pb2.BREAKER_STATE_OPEN,
    "half-open": orchestrator_pb2.BREAKER_STATE_HALF_OPEN,
}
_GROUPS = {
    orchestrator_pb2.USAGE_GROUPING_TENANT: "tenant",
    orchestrator_pb2.USAGE_GROUPING_KEY: "key",
    orchestrator_pb2.USAGE_GROUPING_MODEL: "model",
    orchestrator_pb2.USAGE_GROUPING_DAY: "day",
}


def models_to_proto(entries: Iterable[ModelEntry]) -> orchestrator_pb2.ListModelsResponse:
    """Every listed model and alias."""
    return orchestrator_pb2.ListModelsResponse(
        models=[
            orchestrator_pb2.ModelInfo(
                name=e.name,
                provider=e.target.provider,
                provider_model=e.target.model,
                alias_for=e.alias_for,
            )
            for e in entries
        ]
    )


class Queues(Protocol):
    """Calls in flight and waiting per target (the engine's `TargetLimiter`)."""

    def in_flight(self, target: str) -> int: ...

    def queued(self, target: str) -> int: ...


def targets_to_proto(
    views: Iterable[BreakerView], entries: Iterable[ModelEntry], queues: Queues
) -> orchestrator_pb2.ListTargetsResponse:
    """Every target with a breaker or a listed model, sorted by name: breaker state (closed
    when it has no breaker yet), in-flight and queued calls."""
    by_name = {v.name: v for v in views}
    names = set(by_name) | {e.target.name for e in entries}
    out = []
    for name in sorted(names):
        view = by_name.get(name)
        status = orchestrator_pb2.TargetStatus(
            name=name,
            breaker_state=_BREAKER_STATES[view.state if view else "closed"],
            failure_count=view.failure_count if view else 0,
            in_flight=queues.in_flight(name),
            queued=queues.queued(name),
        )
        if view is not None and view.seconds_to_half_open is not None:
            status.time_to_half_open.FromTimedelta(
                datetime.timedelta(seconds=view.seconds_to_half_open)
            )
        out.append(status)
    return orchestrator_pb2.ListTargetsResponse(targets=out)


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """What a `GetUsageRequest` asks for."""

    groups: tuple[str, ...]
    """Ledger groupings (``tenant``, ``key``, ``model``, ``day``); unknown ones are left out."""
    since: float | None
    """Epoch seconds, inclusive; None: from the start."""
    until: float | None
    """Epoch seconds, exclusive; None: until now."""
    tenant: str
    """The tenant the request names (empty: none); see `tenancy.visible_tenant`."""


def usage_query_from_proto(request: orchestrator_pb2.GetUsageRequest) -> UsageQuery:
    """The query of a `GetUsageRequest`."""
    return UsageQuery(
        groups=tuple(_GROUPS[g] for g in request.group_by if g in _GROUPS),
        since=_seconds(request.since) if request.HasField("since") else None,
        until=_seconds(request.until) if request.HasField("until") else None,
        tenant=request.tenant,
    )


def _seconds(t: timestamp_pb2.Timestamp) -> float:
    seconds: float = t.ToSeconds() + t.nanos / 1e9
    return seconds


def usage_totals_to_proto(rows: Sequence[UsageTotalRow]) -> orchestrator_pb2.GetUsageResponse:
    """Ledger totals as a `GetUsageResponse`."""
    return orchestrator_pb2.GetUsageResponse(
        totals=[
            orchestrator_pb2.UsageTotal(
                tenant=row.tenant or "",
                key_id=row.key_id or "",
                model=row.model or "",
                day=row.day or "",
                requests=row.requests,
                failed=row.failed,
                usage=chat_pb2.Usage(
                    input_tokens=row.input_tokens,
                    output_tokens=row.output_tokens,
                    cache_read_tokens=row.cache_read_tokens,
                    cache_write_tokens=row.cache_write_tokens,
                    reasoning_tokens=row.reasoning_tokens,
                ),
                cost_usd=row.cost_usd,
                cache_savings_usd=row.cache_savings_usd,
                prompt_cache_savings_usd=row.prompt_cache_savings_usd,
                response_cache_savings_usd=row.response_cache_savings_usd,
            )
            for row in rows
        ]
    )
