"""Ledger records -> protobuf for the console's views: recent calls and target health.

The ledger keeps each call's attempts as JSON (`llmesh.services.core.trail.attempt_json`);
here they become `llmesh.v1.Attempt` messages again, and a window of recent records gives
each target its error rate and median latency for `WatchMesh`.
"""

from __future__ import annotations

import datetime
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmesh.services.core.usage import CallStatus
from llmesh.services.ledger import UsageRecord
from llmesh.v1 import chat_pb2, errors_pb2, orchestrator_pb2

__all__ = [
    "DEFAULT_RECENT",
    "HEALTH_WINDOW",
    "MAX_RECENT",
    "TargetHealth",
    "apply_health",
    "call_to_proto",
    "recent_limit",
    "target_health",
    "watch_interval",
]

DEFAULT_RECENT = 50
"""Calls `ListRecentCalls` lists when the request names no limit."""
MAX_RECENT = 500
"""The most calls one `ListRecentCalls` answer lists."""
HEALTH_WINDOW = 200
"""How many of the ledger's latest calls a target's error rate and latency are taken from."""

_STATES = {
    CallStatus.OK: orchestrator_pb2.CALL_STATE_OK,
    CallStatus.ERROR: orchestrator_pb2.CALL_STATE_ERROR,
    CallStatus.CANCELLED: orchestrator_pb2.CALL_STATE_CANCELLED,
    CallStatus.INTERRUPTED: orchestrator_pb2.CALL_STATE_INTERRUPTED,
}
_OUTCOMES = {
    "succeeded": orchestrator_pb2.ATTEMPT_OUTCOME_SUCCEEDED,
    "failed": orchestrator_pb2.ATTEMPT_OUTCOME_FAILED,
    "cancelled": orchestrator_pb2.ATTEMPT_OUTCOME_CANCELLED,
    "skipped": orchestrator_pb2.ATTEMPT_OUTCOME_SKIPPED,
}


def recent_limit(requested: int, default: int = DEFAULT_RECENT, most: int = MAX_RECENT) -> int:
    """How many calls to list: `default` for 0 or less, never more than `most`."""
    return default if requested <= 0 else min(requested, most)


def watch_interval(seconds: float | None) -> float:
    """The seconds between `WatchMesh` snapshots: 1 when unset, held between 0.2 and 60."""
    if not seconds:
        return 1.0
    return min(max(seconds, 0.2), 60.0)


def _reason(value: str | None) -> errors_pb2.ErrorReason:
    """The proto value of a stored reason; UNSPECIFIED for none or one this build lacks."""
    if not value:
        return errors_pb2.ERROR_REASON_UNSPECIFIED
    try:
        reason: errors_pb2.ErrorReason = errors_pb2.ErrorReason.Value("ERROR_REASON_" + value)
    except ValueError:
        return errors_pb2.ERROR_REASON_UNSPECIFIED
    return reason


def _duration_ms(ms: float) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=ms)


def _attempt(stored: Mapping[str, Any]) -> orchestrator_pb2.Attempt:
    """One stored attempt (`attempt_json`) as a message."""
    provider, _, model = str(stored.get("target", "")).partition("/")
    attempt = orchestrator_pb2.Attempt(
        provider=provider,
        model=model,
        outcome=_OUTCOMES.get(
            str(stored.get("outcome")), orchestrator_pb2.ATTEMPT_OUTCOME_UNSPECIFIED
        ),
        error_reason=_reason(stored.get("reason")),
        hedged=bool(stored.get("hedged", False)),
        retry=bool(stored.get("retry", False)),
        pick=str(stored.get("pick", "")),
        detail=str(stored.get("detail", "")),
    )
    attempt.latency.FromTimedelta(_duration_ms(float(stored.get("latency_ms", 0.0))))
    if stored.get("ttft_ms") is not None:
        attempt.time_to_first_token.FromTimedelta(_duration_ms(float(stored["ttft_ms"])))
    return attempt


def call_to_proto(record: UsageRecord) -> orchestrator_pb2.CallSummary:
    """One ledger record as a `CallSummary`, its attempt trail included."""
    call = orchestrator_pb2.CallSummary(
        request_id=record.request_id,
        tenant=record.tenant,
        key_id=record.key_id,
        route=record.route,
        provider=record.provider,
        model=record.model,
        state=_STATES[record.status],
        error_reason=_reason(record.error_reason),
        usage=chat_pb2.Usage(
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            cache_read_tokens=record.cache_read_tokens,
            cache_write_tokens=record.cache_write_tokens,
            reasoning_tokens=record.reasoning_tokens,
        ),
        cost_usd=record.cost_usd,
        cache_savings_usd=record.cache_savings_usd,
        cache_hit=record.cache_hit,
        attempts=[_attempt(a) for a in record.attempts if isinstance(a, Mapping)],
        trace_id=record.trace_id,
    )
    call.start_time.FromDatetime(datetime.datetime.fromtimestamp(record.ts, datetime.UTC))
    call.duration.FromTimedelta(_duration_ms(record.duration_ms))
    if record.ttft_ms is not None:
        call.time_to_first_token.FromTimedelta(_duration_ms(record.ttft_ms))
    return call


@dataclass(frozen=True, slots=True)
class TargetHealth:
    """A target's attempts among recent calls: how many, how many failed, how long."""

    attempts: int
    """Attempts that reached the target (succeeded or failed; skipped and cancelled not)."""
    failed: int
    """Of those, the failed ones."""
    median_latency_ms: float
    """Their median latency."""

    @property
    def error_rate(self) -> float:
        """The share of attempts that failed, 0 to 1."""
        return self.failed / self.attempts if self.attempts else 0.0


def target_health(records: Iterable[UsageRecord]) -> dict[str, TargetHealth]:
    """Each target's health over the attempts of `records` (every tenant's: a target's
    health is the mesh's, not a tenant's)."""
    latencies: dict[str, list[float]] = {}
    failures: dict[str, int] = {}
    for record in records:
        for stored in record.attempts:
            if not isinstance(stored, Mapping):
                continue
            outcome = stored.get("outcome")
            if outcome not in ("succeeded", "failed"):
                continue
            target = str(stored.get("target", ""))
            latencies.setdefault(target, []).append(float(stored.get("latency_ms", 0.0)))
            failures[target] = failures.get(target, 0) + (outcome == "failed")
    return {
        target: TargetHealth(len(values), failures[target], statistics.median(values))
        for target, values in latencies.items()
    }


def apply_health(
    targets: Sequence[orchestrator_pb2.TargetStatus], health: Mapping[str, TargetHealth]
) -> None:
    """Fill each target's error rate, latency and attempt count from `health` (in place)."""
    for status in targets:
        seen = health.get(status.name)
        if seen is None:
            continue
        status.error_rate = seen.error_rate
        status.recent_attempts = seen.attempts
        status.latency.FromTimedelta(_duration_ms(seen.median_latency_ms))
