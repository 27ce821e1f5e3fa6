"""The call's span: where a call's own facts go on the trace.

The orchestrator's observing layer (`llmesh.services.orchestrator.layers.observed`), the
outermost layer of the call path, opens it for each call through the path when tracing is
on, and the same layer's one pass over the call's events fills it in. It carries what only
the call path knows: the request id, tenant, model asked for, targets, the number of
attempts, cost, llmesh's overhead, whether the response cache answered, the call's usage and
its failure reason. The attempts themselves are client spans of their own
(`llmesh.services.telemetry.trace_attempts`), under it.

A call that is the whole of a gRPC request (``Chat``, ``StreamChat``, ``Embed``: the
methods named by `ONE_CALL_METHODS`) takes the request's SERVER span as its span: the facts
are written on the server span and the attempts hang under it, one span fewer per call.
Any other call, or a second call under the same server span (a council's branches and
judge, a summarizing call made while fitting a prompt), and a call with no gRPC server span
over it get an INTERNAL span of their own, ``call {model}``. The server span's status stays
the gRPC conventions' (no error status for a caller's fault); the failure reason is its
``error.type`` either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import Token
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY

from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.events import Completed
from llmesh.services.telemetry import current as _context
from llmesh.services.telemetry.current import attach_span, detach

__all__ = ["ONE_CALL_METHODS", "CallTracer"]

ONE_CALL_METHODS = frozenset({"Chat", "StreamChat", "Embed"})
"""The orchestrator's gRPC methods whose request is one call, whose server span is the call's."""

_REQUEST_ID = "llmesh.request_id"
_SERVER = SpanKind.SERVER


class CallTracer:
    """Opens each call's span and writes the call's facts on it."""

    __slots__ = ("_methods", "_tracer")

    def __init__(self, one_call_methods: Iterable[str] = ONE_CALL_METHODS) -> None:
        self._tracer = trace.get_tracer("llmesh.orchestrator")
        self._methods = frozenset(one_call_methods)

    def open(self, call: RoutedCall[Any]) -> tuple[Span, Token[Context] | None]:
        """The call's span, made current: the gRPC server span of a request that is this one
        call (current already, ended by the server: no token), else a span of its own and
        the token of making it current. `close` undoes it. Its status is left to `failed`.
        (A pair, not a context manager: the observing layer's generator closes it in its
        own ``finally``, without a context manager's calls on every call.)"""
        c = call.call
        attributes = {
            _REQUEST_ID: call.request_id,
            "llmesh.tenant": c.caller.tenant,
            "llmesh.model": c.model,
            "llmesh.targets": tuple([t.name for t in call.targets]),
        }
        server = self._server_span()
        if server is not None:
            server.set_attributes(attributes)
            return server, None
        span = self._tracer.start_span(
            f"call {c.model}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        return span, attach_span(span)

    @staticmethod
    def close(span: Span, token: Token[Context] | None) -> None:
        """End what `open` opened: the call's own span no longer current, then ended (a
        server span is the server's to end)."""
        if token is not None:
            detach(token)
            span.end()

    def _server_span(self) -> Span | None:
        """The current span if it is the recording gRPC server span of a one-call method
        that no call has taken yet."""
        variable = _context._VARIABLE
        context = _context.current() if variable is None else variable.get()
        span: Any = context.get(_SPAN_KEY)
        if span is None or getattr(span, "kind", None) is not _SERVER or not span.is_recording():
            return None
        attributes = span.attributes
        if (
            attributes is None
            or attributes.get("rpc.system") != "grpc"
            or attributes.get("rpc.method") not in self._methods
            or _REQUEST_ID in attributes
        ):
            return None
        return span  # type: ignore[no-any-return]

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
        """The failure: its reason as ``error.type``, and the error status on a call's own
        span (a server span's status follows the gRPC conventions, set by the server)."""
        if not span.is_recording():
            return
        reason = err.reason.value
        span.set_attributes({"error.type": reason, "llmesh.attempts": len(call.trail.attempts)})
        if getattr(span, "kind", None) is not _SERVER:
            span.set_status(Status(StatusCode.ERROR, reason))
