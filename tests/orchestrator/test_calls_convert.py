"""Ledger records as `CallSummary` messages, and each target's health over recent calls."""

from __future__ import annotations

from typing import Any

from llmesh.services.core import CallStatus
from llmesh.services.ledger import UsageRecord
from llmesh.services.orchestrator.calls_convert import (
    apply_health,
    call_to_proto,
    recent_limit,
    target_health,
    watch_interval,
)
from llmesh.v1 import errors_pb2, orchestrator_pb2

MINI = "openai/gpt-4o-mini"
HAIKU = "anthropic/claude-haiku-4-5"


def _attempt(target: str, outcome: str, latency_ms: float, **extra: Any) -> dict[str, Any]:
    return {"target": target, "outcome": outcome, "latency_ms": latency_ms, **extra}


def test_a_record_becomes_a_call_summary_with_its_trail() -> None:
    record = UsageRecord(
        "req-1",
        ts=1_762_000_000.5,
        tenant="acme",
        key_id="k1",
        route="fast",
        provider="anthropic",
        model="claude-haiku-4-5",
        attempts=[
            _attempt(MINI, "failed", 12.0, reason="UPSTREAM_UNAVAILABLE", retry=False),
            _attempt(HAIKU, "succeeded", 40.0, ttft_ms=8.0, pick="latency 1/2", hedged=True),
        ],
        input_tokens=10,
        output_tokens=5,
        cost_usd=0.25,
        cache_savings_usd=0.5,
        ttft_ms=20.0,
        duration_ms=55.0,
        cache_hit=False,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )
    call = call_to_proto(record)
    assert (call.request_id, call.tenant, call.key_id, call.route) == (
        "req-1",
        "acme",
        "k1",
        "fast",
    )
    assert call.state == orchestrator_pb2.CALL_STATE_OK
    assert call.start_time.ToMilliseconds() == 1_762_000_000_500
    assert call.duration.ToMilliseconds() == 55 and call.time_to_first_token.ToMilliseconds() == 20
    assert (call.usage.input_tokens, call.usage.output_tokens) == (10, 5)
    assert (call.cost_usd, call.cache_savings_usd) == (0.25, 0.5)
    assert call.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    failed, served = call.attempts
    assert (failed.provider, failed.model) == ("openai", "gpt-4o-mini")
    assert failed.outcome == orchestrator_pb2.ATTEMPT_OUTCOME_FAILED
    assert failed.error_reason == errors_pb2.ERROR_REASON_UPSTREAM_UNAVAILABLE
    assert failed.latency.ToMilliseconds() == 12 and not failed.HasField("time_to_first_token")
    assert served.outcome == orchestrator_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert served.hedged and served.pick == "latency 1/2"
    assert served.time_to_first_token.ToMilliseconds() == 8


def test_a_failed_call_keeps_its_state_and_reason_and_an_unknown_reason_is_unspecified() -> None:
    call = call_to_proto(
        UsageRecord("r", status=CallStatus.INTERRUPTED, error_reason="SOMETHING_NEW")
    )
    assert call.state == orchestrator_pb2.CALL_STATE_INTERRUPTED
    assert call.error_reason == errors_pb2.ERROR_REASON_UNSPECIFIED
    assert not call.HasField("time_to_first_token")
    error = call_to_proto(UsageRecord("r", status=CallStatus.ERROR, error_reason="CIRCUIT_OPEN"))
    assert error.error_reason == errors_pb2.ERROR_REASON_CIRCUIT_OPEN


def test_target_health_counts_reached_attempts_only() -> None:
    records = [
        UsageRecord(
            "1", attempts=[_attempt(MINI, "failed", 10.0), _attempt(HAIKU, "succeeded", 30.0)]
        ),
        UsageRecord("2", attempts=[_attempt(MINI, "succeeded", 20.0)]),
        UsageRecord("3", attempts=[_attempt(MINI, "succeeded", 40.0)]),
        # skipped (breaker open) and cancelled (a losing hedge) attempts reached no one
        UsageRecord(
            "4", attempts=[_attempt(MINI, "skipped", 0.0), _attempt(HAIKU, "cancelled", 5.0)]
        ),
    ]
    health = target_health(records)
    assert set(health) == {MINI, HAIKU}
    assert (health[MINI].attempts, health[MINI].failed) == (3, 1)
    assert health[MINI].error_rate == 1 / 3
    assert health[MINI].median_latency_ms == 20.0
    assert health[HAIKU].error_rate == 0.0


def test_apply_health_fills_only_the_targets_it_knows() -> None:
    targets = [orchestrator_pb2.TargetStatus(name=MINI), orchestrator_pb2.TargetStatus(name=HAIKU)]
    apply_health(
        targets, target_health([UsageRecord("1", attempts=[_attempt(MINI, "failed", 7.0)])])
    )
    assert (targets[0].error_rate, targets[0].recent_attempts) == (1.0, 1)
    assert targets[0].latency.ToMilliseconds() == 7
    assert targets[1].recent_attempts == 0 and not targets[1].HasField("latency")


def test_limits_and_intervals_are_held_to_their_bounds() -> None:
    assert recent_limit(0) == 50 and recent_limit(-3) == 50
    assert recent_limit(7) == 7 and recent_limit(10_000) == 500
    assert recent_limit(0, default=20, most=100) == 20 and recent_limit(500, 20, 100) == 100
    assert watch_interval(None) == 1.0 and watch_interval(0.0) == 1.0
    assert watch_interval(0.01) == 0.2 and watch_interval(5.0) == 5.0
    assert watch_interval(3600.0) == 60.0
