"""Usage records."""

from __future__ import annotations

import pytest

from services.core import CallStatus
from services.ledger import STATUSES, UsageRecord


def test_defaults_and_status() -> None:
    rec = UsageRecord("r1")
    assert rec.ts > 1_700_000_000 and rec.status == "ok" and not rec.failed
    assert rec.attempts == [] and rec.metadata == {} and rec.ttft_ms is None
    assert UsageRecord("r2", status="cancelled").failed
    with pytest.raises(ValueError, match="status"):
        UsageRecord("r3", status="failed")


def test_statuses_are_the_call_statuses_as_stored() -> None:
    assert STATUSES == ("ok", "error", "cancelled")
    assert all(UsageRecord("r", status=s.value).status == s.value for s in CallStatus)
