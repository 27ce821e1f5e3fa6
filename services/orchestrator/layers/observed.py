"""The observing layer: each call's metrics and its call-log record, from one place.

Outermost on the call path, so it sees every call that was routed: refused by a rate
limit or a budget, answered from the response cache, settled by the accounting layer
(whose settlement, kept in the trail, gives tokens and cost). When the call is over, it
hands the call and how it ended to the metrics (`CallMetrics`) and the call log
(`CallLog`); with neither configured the layer is left out of the path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.events import CallEvent, Completed, Switched
from llmesh.services.core.handler import Handler
from llmesh.services.core.usage import CallStatus
from llmesh.services.orchestrator.layers.accounting import DEADLINE_SLACK
from llmesh.services.telemetry import CallEnd, CallLog, CallMetrics

__all__ = ["Observed"]

_log = logging.getLogger("llmesh.telemetry")


class Observed:
    """Records every call's end in the metrics and the call log."""

    def __init__(
        self, inner: Handler, metrics: CallMetrics | None = None, calls: CallLog | None = None
    ) -> None:
        self._inner = inner
        self._metrics = metrics
        self._calls = calls

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events, unchanged."""
        return self._observed(call)

    async def _observed(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        status, reason = CallStatus.ERROR, None
        switches, cache_hit = 0, False
        if self._metrics is not None:
            self._metrics.started(call)
        try:
            async with aclosing(self._inner.stream(call)) as events:
                async for event in events:
                    kind = type(event)
                    if kind is Completed:
                        status, cache_hit = CallStatus.OK, event.cache_hit  # type: ignore[union-attr]
                    elif kind is Switched:
                        switches += 1
                    yield event
        except LlmeshError as err:
            reason = err.reason
            raise
        except (asyncio.CancelledError, GeneratorExit):
            if status is not CallStatus.OK:
                ends = call.ends
                if ends is not None and time.monotonic() >= ends - DEADLINE_SLACK:
                    reason = Reason.DEADLINE_EXCEEDED
                else:
                    status, reason = CallStatus.CANCELLED, Reason.CANCELLED
            raise
        finally:
            end = CallEnd(status, reason, time.monotonic(), switches, cache_hit)
            try:
                if self._metrics is not None:
                    self._metrics.record(call, end)
                if self._calls is not None:
                    self._calls.record(call, end)
            except Exception:  # a fault in telemetry never fails the call
                _log.exception("recording the call %s failed", call.request_id)
