"""What is left of each spending cap, and who may see which (`budget_view`)."""

from __future__ import annotations

from llmesh.services.common.policy_settings import BudgetCaps, BudgetsConfig
from llmesh.services.ledger import UsageTotalRow
from llmesh.services.orchestrator.budget_view import (
    BudgetView,
    budget_views,
    budgets_to_proto,
    period_starts,
)
from llmesh.v1 import orchestrator_pb2

BUDGETS = BudgetsConfig(
    tenants={"acme": BudgetCaps(daily_usd=5.0), "*": BudgetCaps(monthly_usd=100.0)},
    keys={"k-acme": BudgetCaps(daily_usd=1.0, monthly_usd=3.0)},
)
TODAY = [UsageTotalRow(tenant="acme", key_id="k-acme", cost_usd=1.5)]
MONTH = [
    UsageTotalRow(tenant="acme", key_id="k-acme", cost_usd=4.0),
    UsageTotalRow(tenant="globex", key_id="k-globex", cost_usd=7.0),
]


def _names(views: list[BudgetView]) -> list[str]:
    return [f"{v.scope}:{v.name}" for v in views]


def test_every_tenant_and_key_with_a_cap_for_a_caller_seeing_all() -> None:
    views = budget_views(BUDGETS, TODAY, MONTH, None)
    assert _names(views) == ["tenant:acme", "tenant:globex", "key:k-acme"]
    acme, globex, key = views
    assert (acme.spent_today, acme.spent_this_month, acme.wildcard) == (1.5, 4.0, False)
    assert (globex.caps.monthly_usd, globex.wildcard, globex.spent_this_month) == (100.0, True, 7.0)
    assert (key.tenant, key.spent_today, key.spent_this_month) == ("acme", 1.5, 4.0)


def test_a_tenant_sees_its_own_budget_and_keys_only() -> None:
    views = budget_views(BUDGETS, TODAY, [MONTH[0]], "acme", "k-acme", "acme")
    assert _names(views) == ["tenant:acme", "key:k-acme"]
    # a tenant under "*" that spent nothing yet still sees its cap, untouched
    [globex] = budget_views(BUDGETS, [], [], "globex", "k-new", "globex")
    assert (globex.name, globex.spent_this_month, globex.wildcard) == ("globex", 0.0, True)


def test_what_is_left_never_goes_below_zero_and_uncapped_periods_are_absent() -> None:
    views = budget_views(BUDGETS, TODAY, MONTH, None)
    reply = budgets_to_proto(views)
    acme, globex, key = reply.budgets
    assert acme.scope == orchestrator_pb2.BUDGET_SCOPE_TENANT
    assert acme.remaining_today_usd == 3.5 and not acme.HasField("monthly_usd")
    assert not acme.HasField("remaining_this_month_usd")
    assert globex.remaining_this_month_usd == 93.0 and not globex.HasField("daily_usd")
    assert key.scope == orchestrator_pb2.BUDGET_SCOPE_KEY
    assert key.remaining_today_usd == 0.0  # 1.5 spent of 1.0: over, shown as nothing left
    assert key.remaining_this_month_usd == 0.0


def test_no_caps_no_budgets() -> None:
    assert budget_views(BudgetsConfig(), TODAY, MONTH, None) == []


def test_periods_start_at_the_utc_day_and_month() -> None:
    day, month = period_starts(1_765_000_000.0)  # 2025-12-06T05:46:40Z
    assert day == 1_764_979_200.0  # 2025-12-06T00:00Z
    assert month == 1_764_547_200.0  # 2025-12-01T00:00Z
