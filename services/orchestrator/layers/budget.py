"""Budget reservation: a call's worst-case cost is held against every budget it counts
against (its tenant's, its key's, its session's) before anything is sent.

Each attempt is admitted through the call's spend (`admission.spend`: every attempt is
reserved before it is sent, and a reply without an enforced output limit extends the hold
as it streams; a route's ``downgrade`` may switch a call its budget cannot cover to a
cheaper model, `downgrade`); when the call is over, its actual cost (the call's
settlement) is committed and the rest of the hold released. Caps are set, and the
ledger's spend so far seeded, the first time a budget is seen.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from llmesh.services.core.call import RoutedCall
from llmesh.services.core.events import CallEvent
from llmesh.services.core.handler import Handler
from llmesh.services.core.target import Target
from llmesh.services.ledger import PriceTable
from llmesh.services.orchestrator.accounting import Accounting
from llmesh.services.orchestrator.admission import BudgetCaps, BudgetManager
from llmesh.services.orchestrator.admission.spend import CallSpend, open_spend
from llmesh.services.orchestrator.downgrade import reserve_or_downgrade

__all__ = ["Budgeted", "Scope", "ScopeKind", "SpentSoFar"]


class ScopeKind(enum.Enum):
    """What a budget belongs to."""

    TENANT = "tenant"
    KEY = "key"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class Scope:
    """One budget: its kind and the tenant, key id or session it belongs to."""

    kind: ScopeKind
    name: str
    tenant: str = ""
    """For a session: its tenant (sessions are named by their callers, per tenant)."""

    @property
    def key(self) -> str:
        """The budget's storage key, e.g. ``tenant:acme``."""
        if self.kind is ScopeKind.SESSION:
            return f"session:{self.tenant}:{self.name}"
        return f"{self.kind.value}:{self.name}"


SpentSoFar = Callable[[Scope], Awaitable[tuple[float, float]]]
"""(today, this month) already spent by a tenant or key budget, from the ledger."""


def _pick(table: Mapping[str, BudgetCaps], name: str) -> BudgetCaps | None:
    return table.get(name, table.get("*"))


class Budgeted:
    """The budget layer; ``"*"`` entries apply to every tenant / key."""

    def __init__(
        self,
        inner: Handler,
        budgets: BudgetManager,
        prices: PriceTable,
        accounting: Accounting,
        *,
        tenants: Mapping[str, BudgetCaps],
        keys: Mapping[str, BudgetCaps],
        sessions: BudgetCaps | None,
        spent_so_far: SpentSoFar | None = None,
    ) -> None:
        self._inner = inner
        self._budgets = budgets
        self._prices = prices
        self._accounting = accounting
        self._tenants = dict(tenants)
        self._keys = dict(keys)
        self._sessions = sessions
        self._spent_so_far = spent_so_far
        self._seen: set[Scope] = set()

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events, its cost held against its budgets."""
        return self._reserved(call)

    async def _reserved(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        scopes = await self._scopes(call)
        if not scopes:
            async with aclosing(self._inner.stream(call)) as events:
                async for event in events:
                    yield event
            return
        request = call.request

        def reserve(targets: Sequence[Target]) -> Awaitable[CallSpend]:
            return open_spend(
                self._budgets,
                [s.key for s in scopes],
                self._prices,
                targets,
                request,
                lambda a: self._accounting.attempt_cost(a, request),
            )

        call, spend = await reserve_or_downgrade(call, reserve)
        call = call.gated(spend.admit)
        try:
            async with aclosing(spend.watch(self._inner.stream(call))) as events:
                async for event in events:
                    yield event
        finally:
            await spend.settle(self._accounting.settled(call).cost)

    async def _scopes(self, call: RoutedCall[Any]) -> list[Scope]:
        """The budgets with caps this call counts against; set up on first sight."""
        caller = call.caller
        wanted: list[tuple[Scope, BudgetCaps | None]] = [
            (Scope(ScopeKind.TENANT, caller.tenant), _pick(self._tenants, caller.tenant))
        ]
        if caller.key_id:
            wanted.append((Scope(ScopeKind.KEY, caller.key_id), _pick(self._keys, caller.key_id)))
        session = call.call.metadata.get("session", "")
        if session and self._sessions is not None:
            wanted.append((Scope(ScopeKind.SESSION, session, caller.tenant), self._sessions))
        scopes = []
        for scope, caps in wanted:
            if caps is None:
                continue
            if scope not in self._seen:
                self._seen.add(scope)
                self._budgets.set_caps(scope.key, caps)
                if self._spent_so_far is not None and scope.kind is not ScopeKind.SESSION:
                    today, month = await self._spent_so_far(scope)
                    await self._budgets.seed(scope.key, today, month)
            scopes.append(scope)
        return scopes
