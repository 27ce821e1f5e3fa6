"""Cost-capped routing: a call with `max_cost_usd` goes to the cheapest of its targets
whose worst case fits, with no fallback; BUDGET_EXCEEDED when none does."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.events import CallEvent
from llmesh.services.core.handler import Handler
from llmesh.services.ledger import PriceTable
from llmesh.services.orchestrator.admission.spend import input_bound, worst_case

__all__ = ["CostCapped"]


class CostCapped:
    """Narrows a capped call's targets to the cheapest that fits; others pass through."""

    def __init__(self, inner: Handler, prices: PriceTable) -> None:
        self._inner = inner
        self._prices = prices

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events, sent to the cheapest target that fits its cap."""
        if call.call.max_cost_usd is None:
            return self._inner.stream(call)
        return self._inner.stream(self.cap(call))

    def cap(self, call: RoutedCall[Any]) -> RoutedCall[Any]:
        """The call routed to its cheapest target whose worst case fits `max_cost_usd`."""
        cap = call.call.max_cost_usd
        assert cap is not None
        input_tokens = input_bound(call.request)
        priced = []
        for t in call.targets:
            if self._prices.price(t.provider, t.model) is None:
                continue  # an unknown price cannot be shown to fit
            priced.append((worst_case(self._prices, t, call.request, input_tokens), t))
        fitting = sorted((p for p in priced if p[0] <= cap), key=lambda p: p[0])
        if not fitting:
            cheapest = min((p[0] for p in priced), default=None)
            detail = f"; the cheapest target's worst case is ${cheapest:.6f}" if cheapest else ""
            model = call.call.model
            raise LlmeshError(
                Reason.BUDGET_EXCEEDED,
                f"no target of {model!r} fits max_cost_usd={cap}{detail}",
                metadata={
                    "quota.subject": f"request:{model}",
                    "quota.description": f"max_cost_usd {cap}",
                },
            )
        return replace(call, targets=(fitting[0][1],))
