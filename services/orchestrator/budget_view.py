"""What is left of each spending cap: the ``budgets`` caps beside the ledger's spend.

`GetBudgets` reads the configured caps (``budgets.tenants`` and ``budgets.keys``, ``*``
applying to every tenant or key) and the ledger's spend today and this month (UTC), the
same totals the budget layer seeds itself with. Holds of calls still in flight are not
counted: this is what was spent, not what is reserved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from llmesh.services.common.policy_settings import BudgetCaps, BudgetsConfig
from llmesh.services.ledger import UsageTotalRow
from llmesh.v1 import orchestrator_pb2

__all__ = ["BudgetView", "budget_views", "budgets_to_proto", "period_starts"]

WILDCARD = "*"


def period_starts(now: float) -> tuple[float, float]:
    """The unix times the UTC day and the UTC month of `now` began."""
    at = datetime.fromtimestamp(now, UTC)
    day = datetime(at.year, at.month, at.day, tzinfo=UTC).timestamp()
    month = datetime(at.year, at.month, 1, tzinfo=UTC).timestamp()
    return day, month


@dataclass(frozen=True, slots=True)
class BudgetView:
    """One tenant's or key's caps and its spend so far."""

    scope: str
    """``tenant`` or ``key``."""
    name: str
    """The tenant, or the API key id."""
    tenant: str
    """For a key: the tenant the ledger saw it used for (empty when unknown)."""
    caps: BudgetCaps
    wildcard: bool
    """True when the caps are the ``*`` entry's."""
    spent_today: float
    spent_this_month: float


def _spend(rows: Sequence[UsageTotalRow]) -> tuple[dict[str, float], dict[str, float]]:
    """Spend by tenant and by key id of rows grouped by tenant and key."""
    tenants: dict[str, float] = {}
    keys: dict[str, float] = {}
    for row in rows:
        tenants[row.tenant] = tenants.get(row.tenant, 0.0) + row.cost_usd
        if row.key_id:
            keys[row.key_id] = keys.get(row.key_id, 0.0) + row.cost_usd
    return tenants, keys


def _caps(table: Mapping[str, BudgetCaps], name: str) -> tuple[BudgetCaps, bool] | None:
    if name in table:
        return table[name], False
    if WILDCARD in table:
        return table[WILDCARD], True
    return None


def budget_views(
    budgets: BudgetsConfig,
    today: Sequence[UsageTotalRow],
    month: Sequence[UsageTotalRow],
    tenant: str | None,
    own_key: str = "",
    own_tenant: str = "",
) -> list[BudgetView]:
    """The budgets a caller may see: of `tenant` and its keys (None: every tenant), and the
    caller's `own_key` (of `own_tenant`) even before it spent anything. `today` and `month`
    are the ledger's totals grouped by tenant and key since the UTC day's and month's start."""
    day_tenants, day_keys = _spend(today)
    month_tenants, month_keys = _spend(month)
    key_tenant = {row.key_id: row.tenant for row in month if row.key_id}
    if own_key:
        key_tenant.setdefault(own_key, own_tenant)

    def visible(owner: str) -> bool:
        return tenant is None or owner == tenant

    tenant_names = {t for t in budgets.tenants if t != WILDCARD} | set(month_tenants)
    if tenant is not None:
        tenant_names.add(tenant)
    key_names = {k for k in budgets.keys if k != WILDCARD} | set(month_keys)
    if own_key:
        key_names.add(own_key)
    out: list[BudgetView] = []
    for name in sorted(t for t in tenant_names if visible(t)):
        found = _caps(budgets.tenants, name)
        if found is not None:
            out.append(
                BudgetView(
                    "tenant",
                    name,
                    name,
                    found[0],
                    found[1],
                    day_tenants.get(name, 0.0),
                    month_tenants.get(name, 0.0),
                )
            )
    for name in sorted(key_names):
        owner = key_tenant.get(name, "")
        if not (name == own_key or (owner and visible(owner)) or tenant is None):
            continue
        found = _caps(budgets.keys, name)
        if found is not None:
            out.append(
                BudgetView(
                    "key",
                    name,
                    owner,
                    found[0],
                    found[1],
                    day_keys.get(name, 0.0),
                    month_keys.get(name, 0.0),
                )
            )
    return out


_SCOPES = {"tenant": orchestrator_pb2.BUDGET_SCOPE_TENANT, "key": orchestrator_pb2.BUDGET_SCOPE_KEY}


def budgets_to_proto(views: Sequence[BudgetView]) -> orchestrator_pb2.GetBudgetsResponse:
    """The views as a `GetBudgetsResponse`; what is left never goes below zero."""
    out = []
    for view in views:
        budget = orchestrator_pb2.Budget(
            scope=_SCOPES[view.scope],
            name=view.name,
            tenant=view.tenant,
            wildcard=view.wildcard,
            spent_today_usd=view.spent_today,
            spent_this_month_usd=view.spent_this_month,
        )
        if view.caps.daily_usd is not None:
            budget.daily_usd = view.caps.daily_usd
            budget.remaining_today_usd = max(view.caps.daily_usd - view.spent_today, 0.0)
        if view.caps.monthly_usd is not None:
            budget.monthly_usd = view.caps.monthly_usd
            budget.remaining_this_month_usd = max(
                view.caps.monthly_usd - view.spent_this_month, 0.0
            )
        out.append(budget)
    return orchestrator_pb2.GetBudgetsResponse(budgets=out)
