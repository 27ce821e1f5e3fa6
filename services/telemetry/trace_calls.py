"""The call path's tracing layer: one INTERNAL span per call, ``call {model}``.

Outermost on the call path when tracing is on, it opens a span under the current one (the
orchestrator's gRPC server span) for each call through the path, so a council's branches
and judge, each a call of its own, are separate spans with their attempts under them. It
carries what only the call path knows: the request id, tenant, model asked for, targets,
the number of attempts, cost, llmesh's overhead, whether the response cache answered, the
call's usage and its failure reason. The attempts themselves are client spans of their own
(`llmesh.services.telemetry.trace_attempts`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.events import CallEvent, Completed, Started
from llmesh.services.core.handler import Handler

__all__ = ["CallSpans"]


class CallSpans:
    """A span per call with the call's facts (a layer: `Handler` in and out)."""

    def __init__(self, inner: Handler) -> None:
        self._inner = inner
        self._tracer = trace.get_tracer("llmesh.orchestrator")

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The inner events, unchanged, under the call's span."""
        return self._spanned(call)

    async def _spanned(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        c = call.call
        attributes = {
            "llmesh.request_id": call.request_id,
            "llmesh.tenant": c.caller.tenant,
            "llmesh.model": c.model,
            "llmesh.targets": tuple([t.name for t in call.targets]),
        }
        with self._tracer.start_as_current_span(
            f"call {c.model}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
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
