"""Budget-aware downgrade: a call whose budget left cannot cover its route's worst case
switches to the route's cheaper model instead of failing.

The budget layer reserves a call's worst case before anything is sent; the reservation is
refused (BUDGET_EXCEEDED) when, in the tightest of the call's budget scopes, what is left
after spending and the holds of calls in flight is less than that worst case. A route with
``downgrade`` (one model or a list) then tries to reserve for each cheaper model in turn,
and the call runs on the first that fits, with no fallback. The targets left behind are in
the attempt trail (SKIPPED for BUDGET_EXCEEDED, their detail naming the model switched to)
and in the ledger row (`downgraded_from`); the row's route stays what the caller asked for,
its provider and model are what served. When no cheaper model fits either, the first
refusal stands.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome

__all__ = ["DOWNGRADED", "downgraded_from", "reserve_or_downgrade"]

DOWNGRADED = "budget left cannot cover its worst case; downgraded to "
"""How a target left behind by a downgrade is described in the trail (then the new target)."""

S = TypeVar("S")


async def reserve_or_downgrade(
    call: RoutedCall[Any],
    reserve: Callable[[Sequence[Target]], Awaitable[S]],
    clock: Callable[[], float] = time.monotonic,
) -> tuple[RoutedCall[Any], S]:
    """`reserve(call.targets)`, or, when the budget refuses it and the call has cheaper
    targets, the call switched to the first of them `reserve` accepts, with its hold."""
    try:
        return call, await reserve(call.targets)
    except LlmeshError as refused:
        if refused.reason is not Reason.BUDGET_EXCEEDED or not call.downgrade:
            raise
        first = refused
    for cheaper in call.downgrade:
        try:
            held = await reserve((cheaper,))
        except LlmeshError as err:
            if err.reason is Reason.BUDGET_EXCEEDED:
                continue
            raise
        now = clock()
        for target in call.targets:
            record = call.trail.add(AttemptRecord(target, now, detail=DOWNGRADED + cheaper.name))
            record.finish(Outcome.SKIPPED, now, Reason.BUDGET_EXCEEDED)
        return replace(call, targets=(cheaper,), downgrade=()), held
    raise first


def downgraded_from(attempts: Sequence[AttemptRecord]) -> str:
    """The targets a downgrade left behind, comma-separated; empty for none."""
    return ",".join(
        a.target.name
        for a in attempts
        if a.outcome is Outcome.SKIPPED and a.detail.startswith(DOWNGRADED)
    )
