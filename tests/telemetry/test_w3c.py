"""W3C headers read and written in one step: the same contexts and headers as
OpenTelemetry's trace context and baggage propagators."""

from __future__ import annotations

import pytest
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llmesh.services.telemetry import w3c

SDK = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "carrier",
    [
        {},
        {"traceparent": f"00-{TRACE}-{SPAN}-01"},
        {"traceparent": f" 00-{TRACE}-{SPAN}-03\t", "tracestate": "a=1,b=2"},
        {"traceparent": f"01-{TRACE}-{SPAN}-01-future"},  # a later version may add fields
        {"traceparent": f"00-{TRACE}-{SPAN}-01-extra"},  # version 00 may not
        {"traceparent": f"ff-{TRACE}-{SPAN}-01"},
        {"traceparent": f"00-{'0' * 32}-{SPAN}-01"},
        {"traceparent": f"00-{TRACE}-{'0' * 16}-01"},
        {"traceparent": f"00-{TRACE.upper()}-{SPAN}-01"},
        {"traceparent": "garbage", "baggage": "team=search,tier=1"},
        {"traceparent": f"00-{TRACE}-{SPAN}-00", "baggage": "team=search"},
    ],
)
def test_extract_gives_the_propagators_context(carrier: dict[str, str]) -> None:
    ours, theirs = w3c.extract(carrier), SDK.extract(carrier)
    assert trace.get_current_span(ours).get_span_context() == (
        trace.get_current_span(theirs).get_span_context()
    )
    assert baggage.get_all(ours) == baggage.get_all(theirs)


@pytest.mark.parametrize("state", [None, TraceState([("vendor", "x")])])
@pytest.mark.parametrize("bags", [{}, {"team": "search", "tier": "1"}])
def test_inject_gives_the_propagators_headers(
    state: TraceState | None, bags: dict[str, str]
) -> None:
    span = NonRecordingSpan(SpanContext(int(TRACE, 16), int(SPAN, 16), False, TraceFlags(3), state))
    ctx = context.get_current()
    for key, value in bags.items():
        ctx = baggage.set_baggage(key, value, ctx)
    ours: dict[str, str] = {}
    w3c.inject(span, ctx, ours)
    theirs: dict[str, str] = {}
    SDK.inject(theirs, trace.set_span_in_context(span, ctx))
    assert ours == theirs


def test_other_configured_propagators_are_asked_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    only_trace = TraceContextTextMapPropagator()
    # set as a program sets it (`set_global_textmap`), restored after the test
    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", propagate.get_global_textmap())
    propagate.set_global_textmap(only_trace)
    carrier = {"traceparent": f"00-{TRACE}-{SPAN}-01", "baggage": "team=search"}
    extracted = w3c.extract_global(carrier)
    assert baggage.get_all(extracted) == {}  # no baggage propagator configured
    assert f"{trace.get_current_span(extracted).get_span_context().span_id:016x}" == SPAN
    token = context.attach(baggage.set_baggage("team", "search"))
    try:
        out: dict[str, str] = {}
        w3c.inject_global(trace.get_current_span(extracted), out)
    finally:
        context.detach(token)
    assert out == {"traceparent": f"00-{TRACE}-{SPAN}-01"}


@pytest.mark.parametrize(
    ("trace_id", "span_id", "flags"),
    [(int(TRACE, 16), int(SPAN, 16), 1), (1, 1, 0), (2**128 - 1, 2**64 - 1, 255), (7, 2**63, 3)],
)
def test_ids_are_written_as_the_format_writes_them(trace_id: int, span_id: int, flags: int) -> None:
    assert w3c.traceparent_of(trace_id, span_id, flags) == (
        f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
    )
    assert w3c.trace_id_text(trace_id) == f"{trace_id:032x}"
    assert w3c.span_id_text(span_id) == f"{span_id:016x}"


@pytest.mark.parametrize("state", [None, TraceState([("vendor", "x")])])
@pytest.mark.parametrize("bags", [{}, {"team": "search"}])
@pytest.mark.parametrize("valid", [True, False])
def test_a_carrier_of_a_span_is_what_inject_global_adds(
    state: TraceState | None, bags: dict[str, str], valid: bool
) -> None:
    ids = SpanContext(int(TRACE, 16), int(SPAN, 16), False, TraceFlags(1), state)
    span = NonRecordingSpan(ids if valid else trace.INVALID_SPAN_CONTEXT)
    ctx = context.get_current()
    for key, value in bags.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = context.attach(ctx)
    try:
        ours = w3c.carrier_global(span)
        theirs: dict[str, str] = {}
        SDK.inject(theirs, trace.set_span_in_context(span, ctx))
    finally:
        context.detach(token)
    assert ours == theirs
    assert ("traceparent" in ours) is valid and ("baggage" in ours) is bool(bags)


def test_a_carrier_follows_other_configured_propagators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", propagate.get_global_textmap())
    propagate.set_global_textmap(W3CBaggagePropagator())  # baggage only: no traceparent
    span = NonRecordingSpan(SpanContext(int(TRACE, 16), int(SPAN, 16), False, TraceFlags(1)))
    token = context.attach(baggage.set_baggage("team", "search"))
    try:
        assert w3c.carrier_global(span) == {"baggage": "team=search"}
    finally:
        context.detach(token)
