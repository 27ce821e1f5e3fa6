"""The observing layer: each call's metrics, its call-log record and its span, from one place.

Outermost on the call path, so it sees every call that was routed: refused by a rate
limit or a budget, answered from the response cache, settled by the accounting layer
(whose settlement, kept in the trail, gives tokens and cost). With tracing on it opens the
call's span (`CallTracer`) around the rest of the path and fills it in from the same pass
over the call's events: one generator re-yields each event, whatever is on. When the call
is over (its span ended), it hands the call and how it ended to the metrics
(`CallMetrics`) and the call log (`CallLog`). With none of the three configured the layer
is left out of the path.
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
from llmesh.services.core.events import CallEvent, Completed, Started, Switched
from llmesh.services.core.handler import Handler
from llmesh.services.core.usage import CallStatus
from llmesh.services.orchestrator.layers.accounting import DEADLINE_SLACK
from llmesh.services.telemetry import CallEnd, CallLog, CallMetrics
from llmesh.services.telemetry.trace_calls import CallTracer

__all__ = ["Observed"]

_log = logging.getLogger("llmesh.telemetry")

_OK = CallStatus.OK
_ERROR = CallStatus.ERROR


class Observed:
    """Records every call's end in the metrics and the call log, under the call's span."""

    def __init__(
        self,
        inner: Handler,
        metrics: CallMetrics | None = None,
        calls: CallLog | None = None,
        spans: CallTracer | None = None,
    ) -> None:
        self._inner = inner
        self._metrics = metrics
        self._calls = calls
        self._spans = spans

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events, unchanged (under the call's span when tracing is on)."""
        if self._spans is not None:
            return self._traced(call, self._spans)
        return self._observed(call)

    async def _observed(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        status, reason = _ERROR, None
        switches, cache_hit = 0, False
        if self._metrics is not None:
            self._metrics.started(call)
        try:
            async with aclosing(self._inner.stream(call)) as events:
                async for event in events:
                    kind = type(event)
                    if kind is Completed:
                        status, cache_hit = _OK, event.cache_hit  # type: ignore[union-attr]
                    elif kind is Switched:
                        switches += 1
                    yield event
        except LlmeshError as err:
            reason = err.reason
            raise
        except (asyncio.CancelledError, GeneratorExit):
            if status is not _OK:
                status, reason = _cut(call)
            raise
        finally:
            self._record(call, CallEnd(status, reason, time.monotonic(), switches, cache_hit))

    async def _traced(
        self, call: RoutedCall[Any], spans: CallTracer
    ) -> AsyncGenerator[CallEvent, None]:
        """As `_observed`, the rest of the path run under the call's span."""
        status, reason = _ERROR, None
        switches, cache_hit = 0, False
        if self._metrics is not None:
            self._metrics.started(call)
        try:
            span, token = spans.open(call)
            try:
                async with aclosing(self._inner.stream(call)) as events:
                    async for event in events:
                        kind = type(event)
                        if kind is Completed:
                            status, cache_hit = _OK, event.cache_hit  # type: ignore[union-attr]
                            spans.completed(span, event, call)  # type: ignore[arg-type]
                        elif kind is Started:
                            span.set_attribute("llmesh.cache_hit", event.cache_hit)  # type: ignore[union-attr]
                        elif kind is Switched:
                            switches += 1
                        yield event
            except LlmeshError as err:
                spans.failed(span, err, call)
                raise
            finally:
                spans.close(span, token)
        except LlmeshError as err:
            reason = err.reason
            raise
        except (asyncio.CancelledError, GeneratorExit):
            if status is not _OK:
                status, reason = _cut(call)
            raise
        finally:
            # recorded once the span has ended: the call log's span is the caller's, as
            # the metrics' exemplars'
            if self._metrics is not None or self._calls is not None:
                self._record(call, CallEnd(status, reason, time.monotonic(), switches, cache_hit))

    def _record(self, call: RoutedCall[Any], end: CallEnd) -> None:
        try:
            if self._metrics is not None:
                self._metrics.record(call, end)
            if self._calls is not None:
                self._calls.record(call, end)
        except Exception:  # a fault in telemetry never fails the call
            _log.exception("recording the call %s failed", call.request_id)


def _cut(call: RoutedCall[Any]) -> tuple[CallStatus, Reason]:
    """How a call cut before its end ended: past its deadline, else cancelled."""
    ends = call.ends
    if ends is not None and time.monotonic() >= ends - DEADLINE_SLACK:
        return _ERROR, Reason.DEADLINE_EXCEEDED
    return CallStatus.CANCELLED, Reason.CANCELLED
