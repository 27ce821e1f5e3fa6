"""Usage records and their attempt entries."""

from __future__ import annotations

import pytest

from services.common.errors import Reason
from services.ledger import UsageRecord, attempt_entry, usage_entry
from services.orchestrator.domain import Usage
from services.orchestrator.routing import Target
from services.orchestrator.trail import AttemptRecord, Outcome


def test_attempt_entry() -> None:
    a = AttemptRecord(Target("anthropic", "claude-haiku-4-5"), started=10.0, retry=True)
    a.ttft = 0.25
    a.usage = Usage(input_tokens=5, output_tokens=7, cache_read_tokens=3, estimated=True)
    a.finish(Outcome.FAILED, 11.5, Reason.STREAM_INTERRUPTED)
    assert attempt_entry(a) == {
        "target": "anthropic/claude-haiku-4-5",
        "outcome": "failed",
        "reason": "STREAM_INTERRUPTED",
        "latency_ms": 1500.0,
        "ttft_ms": 250.0,
        "hedged": False,
        "retry": True,
        "usage": {
            "input_tokens": 5,
            "output_tokens": 7,
            "cache_read_tokens": 3,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
            "estimated": True,
        },
    }
    skipped = AttemptRecord(Target("openai", "gpt-4o"), started=1.0)
    skipped.finish(Outcome.SKIPPED, 1.0, Reason.CIRCUIT_OPEN)
    entry = attempt_entry(skipped)
    assert entry["usage"] is None and entry["ttft_ms"] is None and entry["latency_ms"] == 0.0
    assert usage_entry(None) is None


def test_add_usage_sums_attempts() -> None:
    rec = UsageRecord("r1")
    rec.add_usage(Usage(input_tokens=10, output_tokens=5, reasoning_tokens=2))
    rec.add_usage(Usage(input_tokens=1, cache_read_tokens=7, cache_write_tokens=3, estimated=True))
    assert (rec.input_tokens, rec.output_tokens, rec.reasoning_tokens) == (11, 5, 2)
    assert (rec.cache_read_tokens, rec.cache_write_tokens, rec.usage_estimated) == (7, 3, True)


def test_defaults_and_status() -> None:
    rec = UsageRecord("r1")
    assert rec.ts > 1_700_000_000 and rec.status == "ok" and not rec.failed
    assert rec.attempts == [] and rec.metadata == {} and rec.ttft_ms is None
    assert UsageRecord("r2", status="cancelled").failed
    with pytest.raises(ValueError, match="status"):
        UsageRecord("r3", status="failed")
