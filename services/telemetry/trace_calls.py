"""The call's span: one INTERNAL span per call through the call path, ``call {model}``.

The orchestrator's observing layer (`llmesh.services.orchestrator.layers.observed`), the
outermost layer of the call path, opens it under the current span (the orchestrator's gRPC
server span) for each call through the path when tracing is on, so a council's branches and
judge, each a call of its own, are separate spans with their attempts under them; the same
layer's one pass over the call's events fills it in. It carries what only the call path
knows: the request id, tenant, model asked for, targets, the number of attempts, cost,
llmesh's overhead, whether the response cache answered, the call's usage and its failure
reason. The attempts themselves are client spans of their own
(`llmesh.services.telemetry.trace_attempts`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.events import Completed

__all__ = ["CallTracer"]


class CallTracer:
    """Opens each call's span and writes the call's facts on it."""

    __slots__ = ("_tracer",)

    def __init__(self) -> None:
        self._tracer = trace.get_tracer("llmesh.orchestrator")

    def open(self, call: RoutedCall[Any]) -> AbstractContextManager[Span]:
        """The call's span, current inside the ``with``; ended on leaving it, its status
        left to `failed` (an exception passing through sets nothing)."""
        c = call.call
        attributes = {
            "llmesh.request_id": call.request_id,
            "llmesh.tenant": c.caller.tenant,
            "llmesh.model": c.model,
            "llmesh.targets": tuple([t.name for t in call.targets]),
        }
        return self._tracer.start_as_current_span(
            f"call {c.model}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )

    @staticmethod
    def completed(span: Span, event: Completed, call: RoutedCall[Any]) -> None:
        """The reply's facts: cache hit, cost, overhead, attempts, usage."""
        if not span.is_recording():
            return
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

    @staticmethod
    def failed(span: Span, err: LlmeshError, call: RoutedCall[Any]) -> None:
        """The failure: its reason as ``error.type`` and the error status."""
        if not span.is_recording():
            return
        reason = err.reason.value
        span.set_attributes({"error.type": reason, "llmesh.attempts": len(call.trail.attempts)})
        span.set_status(Status(StatusCode.ERROR, reason))
