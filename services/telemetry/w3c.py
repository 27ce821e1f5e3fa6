"""W3C trace context (``traceparent``, ``tracestate``) and ``baggage``, read and written in
one step.

OpenTelemetry's propagators go through a composite, a getter or setter per header and
several context look-ups for each call; these functions give the same headers and contexts
(`TraceContextTextMapPropagator`'s pattern and rules, the baggage propagator itself when a
``baggage`` header or baggage is there) with a few operations. `extract_global` and
`inject_global` serve the gRPC spans, which follow the process's configured propagators
(``OTEL_PROPAGATORS``): they take the short path only while those are the default ones
(trace context, then baggage), and ask the configured propagators otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping

from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from llmesh.services.telemetry.current import current

__all__ = [
    "carrier_global",
    "extract",
    "extract_global",
    "inject",
    "inject_global",
    "inject_ids",
    "span_id_text",
    "trace_context",
    "trace_id_text",
    "traceparent_of",
]

_TRACEPARENT = re.compile(
    r"^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?[ \t]*$"
)
"""`TraceContextTextMapPropagator`'s pattern."""
_BAGGAGE = W3CBaggagePropagator()
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_FLAGS = [TraceFlags(i) for i in range(256)]
_FLAGS_TEXT = [f"{i:02x}" for i in range(256)]
_to_bytes = int.to_bytes


def traceparent_of(trace_id: int, span_id: int, flags: int) -> str:
    """The ``traceparent`` of a span's ids: ``f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"``
    (the ids in range, as a span's are), at about a third of its cost."""
    return f"00-{_to_bytes(trace_id, 16).hex()}-{_to_bytes(span_id, 8).hex()}-{_FLAGS_TEXT[flags]}"


def trace_id_text(trace_id: int) -> str:
    """A trace id as 32 lower-case hex digits (``f"{trace_id:032x}"``, faster)."""
    return _to_bytes(trace_id, 16).hex()


def span_id_text(span_id: int) -> str:
    """A span id as 16 lower-case hex digits (``f"{span_id:016x}"``, faster)."""
    return _to_bytes(span_id, 8).hex()


def extract(carrier: Mapping[str, str]) -> Context:
    """The context `carrier`'s headers (lower-case names) carry, on an empty context, as
    the trace context and baggage propagators make it."""
    context = Context()
    header = carrier.get("traceparent")
    if header:
        remote = _parent(header, carrier.get("tracestate"))
        if remote is not None:  # trace.set_span_in_context, without a copy of `context`
            context = Context({_SPAN_KEY: NonRecordingSpan(remote)})
    if "baggage" in carrier:
        context = _BAGGAGE.extract(carrier, context)
    return context


def trace_context(traceparent: str) -> SpanContext | None:
    """The remote span a ``traceparent`` header names; None when it is not a valid one."""
    return _parent(traceparent, None)


def _parent(header: str, state: str | None) -> SpanContext | None:
    match = _TRACEPARENT.search(header)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN or version == "ff":
        return None
    if version == "00" and rest:
        return None
    # SpanContext's constructor only checks the ids, which are non-zero and in range here
    return tuple.__new__(
        SpanContext,
        (
            int(trace_id, 16),
            int(span_id, 16),
            True,
            _FLAGS[int(flags, 16)],
            DEFAULT_TRACE_STATE if state is None else TraceState.from_header([state]),
            True,
        ),
    )


def inject(span: Span, context: Context | None, carrier: MutableMapping[str, str]) -> None:
    """Add `span`'s ``traceparent`` (and ``tracestate``) and `context`'s ``baggage`` (the
    current context's when None) to `carrier`."""
    inject_ids(span.get_span_context(), current() if context is None else context, carrier)


def inject_ids(ids: SpanContext, context: Context, carrier: MutableMapping[str, str]) -> None:
    """`inject` of a span's context `ids`, with `context`'s baggage."""
    trace_id, span_id, _, flags, state, valid = ids  # a SpanContext is a tuple
    if valid:
        carrier["traceparent"] = traceparent_of(trace_id, span_id, flags)
        if state is not DEFAULT_TRACE_STATE and state:
            carrier["tracestate"] = state.to_header()
    found = context.get(_BAGGAGE_KEY)
    if found and isinstance(found, dict):
        _BAGGAGE.inject(carrier, context)


_DEFAULT: list[object] = []
"""The global propagator last found to be the default one (trace context, then baggage).
`extract_global` and `inject_global` compare it with the global itself, read where the API
keeps it (``_HTTP_TEXT_FORMAT``, what `get_global_textmap` returns) without a call; any other
global, or an API that keeps it elsewhere, goes through `_default`."""


def _default() -> bool:
    """Whether the process's global propagator is the default one (trace context, then
    baggage), for which `extract` and `inject` are the propagators' own effect."""
    textmap = propagate.get_global_textmap()
    if _DEFAULT and textmap is _DEFAULT[0]:
        return True
    kinds = [type(p) for p in getattr(textmap, "_propagators", ())]
    if type(textmap) is CompositePropagator and kinds == [
        TraceContextTextMapPropagator,
        W3CBaggagePropagator,
    ]:
        _DEFAULT[:] = [textmap]
        return True
    return False


def extract_global(carrier: Mapping[str, str]) -> Context:
    """`extract`, by the process's configured propagators."""
    if (_DEFAULT and getattr(propagate, "_HTTP_TEXT_FORMAT", None) is _DEFAULT[0]) or _default():
        return extract(carrier)
    return propagate.extract(carrier, Context())


def carrier_global(span: Span) -> dict[str, str]:
    """What `inject_global` adds for `span`, as a new carrier; a recording span's
    ``traceparent`` alone (no trace state, no baggage in the current context) in one step."""
    if (_DEFAULT and getattr(propagate, "_HTTP_TEXT_FORMAT", None) is _DEFAULT[0]) or _default():
        trace_id, span_id, _, flags, state, valid = span.get_span_context()  # a tuple
        if valid and (state is DEFAULT_TRACE_STATE or not state):
            found = current().get(_BAGGAGE_KEY)
            if not (found and isinstance(found, dict)):
                return {"traceparent": traceparent_of(trace_id, span_id, flags)}
    carrier: dict[str, str] = {}
    inject_global(span, carrier)
    return carrier


def inject_global(span: Span, carrier: MutableMapping[str, str]) -> None:
    """`inject` of `span` under the current context, by the process's configured propagators."""
    if (_DEFAULT and getattr(propagate, "_HTTP_TEXT_FORMAT", None) is _DEFAULT[0]) or _default():
        inject(span, None, carrier)
    else:
        propagate.inject(carrier, trace_api.set_span_in_context(span))
