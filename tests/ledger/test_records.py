"""Usage records."""

from __future__ import annotations

import pytest

from llmesh.services.core import CallStatus
from llmesh.services.ledger import STATUSES, UsageRecord


def test_defaults_and_status() -> None:
    rec = UsageRecord("r1")
    assert rec.ts > 1_700_000_000 and rec.status is CallStatus.OK and not rec.failed
    assert rec.attempts == [] and rec.metadata == {} and rec.ttft_ms is None
    assert UsageRecord("r2", status=CallStatus.CANCELLED).failed
    with pytest.raises(TypeError, match="CallStatus"):
        UsageRecord("r3", status="failed")  # type: ignore[arg-type]


def test_statuses_are_the_call_statuses_as_stored() -> None:
    assert STATUSES == ("ok", "error", "cancelled", "interrupted")
    assert tuple(s.value for s in CallStatus) == STATUSES
