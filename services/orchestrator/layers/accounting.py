"""The accounting layer: what the call consumed and cost, and its one ledger record.

The call is settled once (`Accounting.settled`, kept in the trail: the budget commits its
cost, admission refunds the tokens it did not use): when the terminal event passes, which
then carries the call's cost, or else when the call ends without one. The layer sits
outside the budget's, so a reply the budget stops mid-stream is recorded with the budget's
BUDGET_EXCEEDED.
Whatever happened (finish, error, deadline, the caller going away), exactly one usage
record is handed to the ledger when any attempt reached a provider. Before that, the
layer's gate, the last each attempt passes before its request is sent, hands the ledger the
call's row in flight (`Accounting.started`), which the final record replaces.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.events import CallEvent, Completed
from llmesh.services.core.handler import Handler
from llmesh.services.core.trail import AttemptRecord, Settlement
from llmesh.services.core.usage import CallStatus
from llmesh.services.orchestrator.accounting import Accounting

__all__ = ["DEADLINE_SLACK", "Accounted"]

DEADLINE_SLACK = 0.05
"""Seconds before the call's time limit within which a cancellation counts as its deadline's
(the servicer's timer fires a little before the wire deadline)."""


class Accounted:
    """Settles every call and records it in the ledger."""

    def __init__(self, inner: Handler, accounting: Accounting) -> None:
        self._inner = inner
        self._accounting = accounting

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events; the terminal one carries the call's cost."""
        return self._accounted(call)

    async def _accounted(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        wall = time.time()
        sent: list[tuple[AttemptRecord, Any]] = []
        accounting = self._accounting

        asked = call  # the call without the gate below: the gate must not refer to its own
        # call (a cycle through the closure that only the garbage collector could free, with
        # the whole call in it, on every call)

        async def in_flight(attempt: AttemptRecord, request: Any) -> None:
            accounting.started(asked, wall, attempt, request, sent)

        # last in line: inner layers put their gates first, so an attempt they refuse is
        # never recorded as sent
        call = call.gated(in_flight, last=True)
        ends = call.ends
        status, reason = CallStatus.ERROR, None
        settled: Settlement | None = None
        try:
            async with aclosing(self._inner.stream(call)) as events:
                async for event in events:
                    if type(event) is Completed:
                        settled = self._accounting.settled(call)
                        event = event.costing(settled.cost)
                        status = CallStatus.OK
                    yield event
        except LlmeshError as err:
            reason = err.reason
            err.metadata.setdefault("request_id", call.request_id)  # find it in the ledger
            raise
        except (asyncio.CancelledError, GeneratorExit):
            if status is not CallStatus.OK:  # closing a finished stream early is no cancellation
                if ends is not None and time.monotonic() >= ends - DEADLINE_SLACK:
                    status, reason = CallStatus.ERROR, Reason.DEADLINE_EXCEEDED
                else:
                    status, reason = CallStatus.CANCELLED, Reason.CANCELLED
            raise
        finally:
            if settled is None:  # no terminal event: the attempts are settled only now
                settled = self._accounting.settled(call)
            self._accounting.record(call, wall, settled, status, reason)
