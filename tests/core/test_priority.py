"""Priority tiers: names, the token ceiling, and how a call's tier is resolved."""

from __future__ import annotations

import pytest

from llmesh.services.common.call_metadata import requested_priority
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.caller import Caller
from llmesh.services.core.priority import Priority, parse_priority, resolve_priority, token_ceiling
from llmesh.services.orchestrator.tenancy import acting_caller, call_priority

P = Priority


def test_tiers_are_ordered_and_named() -> None:
    assert sorted(P) == [P.BATCH, P.LOW, P.NORMAL, P.HIGH, P.CRITICAL]
    assert [p.label for p in P] == ["batch", "low", "normal", "high", "critical"]
    assert parse_priority(" High ") is P.HIGH
    assert parse_priority("urgent") is None and parse_priority("") is None


def test_token_tiers_map_to_ceilings() -> None:
    assert [token_ceiling(t) for t in (-1, 0, 1, 2, 9)] == [
        P.NORMAL,
        P.NORMAL,
        P.HIGH,
        P.CRITICAL,
        P.CRITICAL,
    ]


@pytest.mark.parametrize(
    ("requested", "key", "tenant", "ceiling", "expected"),
    [
        (None, None, None, P.CRITICAL, P.NORMAL),
        (None, None, P.LOW, P.CRITICAL, P.LOW),
        (None, P.HIGH, P.LOW, P.CRITICAL, P.HIGH),
        (P.BATCH, P.HIGH, P.LOW, P.CRITICAL, P.BATCH),  # batch is 0: still counts as asked
        (None, P.BATCH, P.HIGH, P.CRITICAL, P.BATCH),
        (P.CRITICAL, None, None, P.NORMAL, P.NORMAL),  # capped, not refused
        (None, None, P.HIGH, P.NORMAL, P.NORMAL),
        (None, None, None, P.LOW, P.LOW),
    ],
)
def test_resolution_order_and_ceiling(
    requested: Priority | None,
    key: Priority | None,
    tenant: Priority | None,
    ceiling: Priority,
    expected: Priority,
) -> None:
    assert resolve_priority(requested, key, tenant, ceiling) is expected


def test_call_priority_reads_the_callers_key_and_tenant() -> None:
    keyed = Caller("acme", "k1", default_priority=None, max_priority=P.HIGH)
    assert call_priority(keyed, None, {"acme": P.LOW}) is P.LOW
    assert call_priority(keyed, P.CRITICAL, {}) is P.HIGH
    keyless = Caller("default", "")
    acting = acting_caller(keyless, "ops")  # the tenant the request names, tiers kept
    assert call_priority(acting, None, {"ops": P.CRITICAL}) is P.CRITICAL
    assert acting_caller(keyed, "other") == keyed


def test_metadata_names_the_requested_tier() -> None:
    assert requested_priority(None) is None
    assert requested_priority([("llmesh-retry-count", "1")]) is None
    assert requested_priority([("llmesh-priority", "LOW")]) is P.LOW
    for bad in ("urgent", b"high"):
        with pytest.raises(LlmeshError) as info:
            requested_priority([("llmesh-priority", bad)])
        assert info.value.reason is Reason.INVALID_REQUEST
