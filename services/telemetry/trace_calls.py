"""The call path's tracing layer: the call's own facts on the span the call runs under.

The span is the orchestrator's gRPC server span (opened by the server interceptor); this
layer, outermost on the call path when tracing is on, adds what only the call path knows:
the request id, tenant, model asked for, the number of attempts, cost, llmesh's overhead,
whether the response cache answered, and the failure reason. The attempts themselves are
spans of their own (`llmesh.services.telemetry.trace_attempts`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.events import CallEvent, Completed, Started
from llmesh.services.core.handler import Handler

__all__ = ["CallSpans"]


class CallSpans:
    """Annotates the current span with the call's outcome (a layer: `Handler` in and out)."""

    def __init__(self, inner: Handler) -> None:
        self._inner = inner

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The inner events, unchanged."""
        span = trace.get_current_span()
        if not span.is_recording():
            return self._inner.stream(call)
        return self._annotated(call, span)

    async def _annotated(
        self, call: RoutedCall[Any], span: trace.Span
    ) -> AsyncGenerator[CallEvent, None]:
        c = call.call
        span.set_attributes(
            {
                "llmesh.request_id": call.request_id,
                "llmesh.tenant": c.caller.tenant,
                "llmesh.model": c.model,
                "llmesh.targets": [t.name for t in call.targets],
            }
        )
        try:
            async with aclosing(self._inner.stream(call)) as events:
                async for event in events:
                    if isinstance(event, Started):
                        span.set_attribute("llmesh.cache_hit", event.cache_hit)
                    elif isinstance(event, Completed):
                        span.set_attributes(
                            {
                                "llmesh.cache_hit": event.cache_hit,
                                "llmesh.cost_usd": event.cost_usd,
                                "llmesh.overhead_ms": round(event.overhead * 1000, 3),
                                "llmesh.attempts": len(call.trail.attempts),
                                "gen_ai.usage.input_tokens": event.usage.input_tokens,
                                "gen_ai.usage.output_tokens": event.usage.output_tokens,
                            }
                        )
                    yield event
        except LlmeshError as err:
            span.set_attributes(
                {"error.type": err.reason.value, "llmesh.attempts": len(call.trail.attempts)}
            )
            span.set_status(Status(StatusCode.ERROR, err.reason.value))
            raise
