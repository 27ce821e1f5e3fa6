"""The C span encoder (`_otlp_native.encode_span`): the Python encoder's bytes, or None.

Generated spans of every shape the C code writes are encoded both ways and compared byte for
byte (and decoded with opentelemetry-proto's classes); the spans it leaves to Python (trace
state, links, values of other types) come out of `SpanEncoder` as Python writes them; and
encoding leaks neither references nor memory. Without the built extension these tests are
skipped, but under CI (``CI=true``) they fail: the extension must be built there.
"""

from __future__ import annotations

import enum
import gc
import math
import os
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceState

from llmesh.services.telemetry import otlp_wire
from llmesh.services.telemetry.lean_trace import (
    UNSET_STATUS,
    LeanSpan,
    LeanTracerProvider,
    SpanEvent,
)
from llmesh.services.telemetry.otlp_wire import SpanEncoder
from tests.support.fuzz import examples, fresh
from tests.support.native import built
from tests.support.tracing import MemorySpans

RESOURCE = {"service.name": "llmesh-orchestrator", "llmesh.service": "orchestrator"}
SINK = MemorySpans()
TRACER = LeanTracerProvider(RESOURCE, SINK).get_tracer("llmesh.orchestrator", "1.0")
INT64 = (-(1 << 63), (1 << 63) - 1)

PROPERTY = settings(
    max_examples=examples(300),
    derandomize=not fresh(),
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def native() -> ModuleType:
    """The C encoder; skips where it was not built, fails under CI."""
    return built(otlp_wire.NATIVE, "llmesh.services.telemetry._otlp_native")


@pytest.fixture
def python_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`SpanEncoder` without the C encoder, as where it was not built."""
    monkeypatch.setattr(otlp_wire, "NATIVE", None)
    yield


def _span(
    name: str = "chat gpt-4o",
    *,
    trace_id: int = 0x4BF92F3577B34DA6A3CE929D0E0E4736,
    span_id: int = 0x00F067AA0BA902B7,
    parent: SpanContext | None = None,
    kind: SpanKind = SpanKind.CLIENT,
    attributes: dict[str, Any] | None = None,
    events: list[SpanEvent] | None = None,
    links: tuple[Link, ...] = (),
    status: Status = UNSET_STATUS,
    start: int = 1_700_000_000_000_000_000,
    end: int | None = 1_700_000_000_002_000_000,
    state: TraceState | None = None,
) -> LeanSpan:
    context = SpanContext(trace_id, span_id, False, None, state)
    span = LeanSpan(
        name, context, parent, kind, attributes or {}, TRACER, SINK, links=links, start_time=start
    )
    span.events = events
    span.status = status
    span.end_time = end
    return span


def _both(span: LeanSpan) -> tuple[bytes, bytes]:
    """A request of `span` from `SpanEncoder` with the C encoder and without."""
    with_native = SpanEncoder(RESOURCE).encode([span])
    saved, otlp_wire.NATIVE = otlp_wire.NATIVE, None
    try:
        python = SpanEncoder(RESOURCE).encode([span])
    finally:
        otlp_wire.NATIVE = saved
    return with_native, python


# ------------------------------------------------------------------ generated spans

_TEXT = st.text(max_size=40) | st.text(st.characters(codec="utf-8"), min_size=100, max_size=300)
_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 1.7976931348623157e308]
)
_INT = st.integers(*INT64) | st.sampled_from([0, -1, 127, 128, 1 << 62, *INT64])
_SCALAR = _TEXT | st.booleans() | _INT | _FLOAT | st.binary(max_size=40)
_VALUE = st.recursive(
    _SCALAR | st.none(),
    lambda inner: st.lists(inner, max_size=5).map(tuple) | st.lists(inner, max_size=5),
    max_leaves=12,
)
_ATTRIBUTES = st.dictionaries(_TEXT, _SCALAR | st.lists(_SCALAR, max_size=5).map(tuple), max_size=8)
_EVENT_ATTRIBUTES = st.dictionaries(_TEXT, _VALUE, max_size=6)
_U64 = st.integers(0, (1 << 64) - 1)


@st.composite
def _contexts(draw: st.DrawFn) -> SpanContext:
    return SpanContext(
        draw(st.integers(1, (1 << 128) - 1)),
        draw(st.integers(1, (1 << 64) - 1)),
        draw(st.booleans()),
    )


_STATUS = st.one_of(
    st.just(UNSET_STATUS),
    st.builds(Status, st.sampled_from(StatusCode)),
    st.builds(lambda d: Status(StatusCode.ERROR, d), st.none() | _TEXT),
)


@st.composite
def _spans(draw: st.DrawFn) -> LeanSpan:
    context = draw(_contexts())
    events = draw(
        st.none()
        | st.lists(st.builds(SpanEvent, _TEXT, _U64, _EVENT_ATTRIBUTES), min_size=0, max_size=3)
    )
    return _span(
        draw(_TEXT),
        trace_id=context.trace_id,
        span_id=context.span_id,
        parent=draw(st.none() | _contexts()),
        kind=draw(st.sampled_from(SpanKind)),
        attributes=draw(_ATTRIBUTES),
        events=events,
        status=draw(_STATUS),
        start=draw(_U64),
        end=draw(st.none() | st.just(0) | _U64),
    )


_REMEMBERING = SpanEncoder(RESOURCE)
"""A Python encoder kept across examples: its remembered attributes must not change a byte."""


@PROPERTY
@given(span=_spans())
def test_generated_spans_encode_to_the_python_bytes(native: ModuleType, span: LeanSpan) -> None:
    encoded = native.encode_span(span)
    assert encoded is not None
    assert encoded == SpanEncoder(RESOURCE)._span(span)
    assert encoded == _REMEMBERING._span(span)
    request = ExportTraceServiceRequest.FromString(SpanEncoder(RESOURCE).encode([span]))
    (decoded,) = request.resource_spans[0].scope_spans[0].spans
    assert decoded.name == span.name
    assert int.from_bytes(decoded.trace_id, "big") == span.context.trace_id
    assert decoded.kind == span.kind.value + 1
    assert [kv.key for kv in decoded.attributes] == list(span.attributes)
    assert len(decoded.events) == len(span.events or ())


@PROPERTY
@given(value=_VALUE)
def test_every_value_type_encodes_as_python_does(native: ModuleType, value: Any) -> None:
    span = _span(attributes={"v": value}, events=[SpanEvent("e", 1, {"v": value, "w": "x"})])
    assert native.encode_span(span) == SpanEncoder(RESOURCE)._span(span)


def test_edge_values_are_written_in_c(native: ModuleType) -> None:
    attributes = {
        "min": INT64[0],
        "max": INT64[1],
        "negative": -1,
        "zero": 0.0,
        "minus_zero": -0.0,
        "nan": math.nan,
        "inf": -math.inf,
        "yes": True,
        "no": False,
        "empty": (),
        "mixed": (1, "a", 2.5, True, (), ("x",)),
        "bytes": b"\x00\xff",
        "text": "ünïcødé ✓ " * 30,
        "": "",
    }
    events = [SpanEvent("exception", 5, {"exception.type": "ValueError", "gone": None})]
    span = _span(
        "ünï ✓", attributes=attributes, events=events, status=Status(StatusCode.ERROR, "boom")
    )
    encoded = native.encode_span(span)
    assert encoded is not None
    assert encoded == SpanEncoder(RESOURCE)._span(span)
    request = ExportTraceServiceRequest.FromString(SpanEncoder(RESOURCE).encode([span]))
    (decoded,) = request.resource_spans[0].scope_spans[0].spans
    values = {kv.key: kv.value for kv in decoded.attributes}
    assert values["min"].int_value == INT64[0]
    assert math.copysign(1.0, values["minus_zero"].double_value) == -1.0
    assert [v.WhichOneof("value") for v in values["mixed"].array_value.values] == [
        "int_value",
        "string_value",
        "double_value",
        "bool_value",
        "array_value",
        "array_value",
    ]
    assert decoded.status.message == "boom" and decoded.status.code == 2


def test_parents_and_statuses(native: ModuleType) -> None:
    remote = SpanContext(1, 2, True)
    local = SpanContext(1, 3, False)
    statuses = [
        UNSET_STATUS,
        Status(StatusCode.UNSET),
        Status(StatusCode.OK),
        Status(StatusCode.ERROR),
        Status(StatusCode.ERROR, ""),
        Status(StatusCode.ERROR, "x" * 200),
    ]
    for parent in (None, remote, local):
        for status in statuses:
            span = _span(parent=parent, status=status, end=None)
            encoded = native.encode_span(span)
            assert encoded is not None
            assert encoded == SpanEncoder(RESOURCE)._span(span)
    (decoded,) = _decoded(_span(parent=remote))
    assert decoded.flags == 0x300 and decoded.parent_span_id == (2).to_bytes(8, "big")


def test_an_empty_trace_state_is_no_trace_state(native: ModuleType) -> None:
    span = _span(state=TraceState())
    assert native.encode_span(span) == SpanEncoder(RESOURCE)._span(span)


# ---------------------------------------------------------------- left to Python


class _Text(str):
    pass


class _Code(enum.IntEnum):
    OK = 200


def _declined() -> list[tuple[str, LeanSpan]]:
    caller = SpanContext(7, 8, True, None, TraceState([("vendor", "v1")]))
    deep: Any = ()
    for _ in range(40):
        deep = (deep,)
    return [
        ("trace state", _span(state=TraceState([("vendor", "v1")]))),
        ("links", _span(links=(Link(caller, {"why": "follows"}),))),
        ("int over int64", _span(attributes={"big": 1 << 63, "kept": 1})),
        ("int under int64", _span(attributes={"small": -(1 << 63) - 1})),
        ("int in a tuple", _span(attributes={"ints": (1, 1 << 70)})),
        ("object", _span(attributes={"odd": object(), "kept": "a"})),
        ("dict", _span(attributes={"map": {"a": 1}})),
        ("str subclass", _span(attributes={"text": _Text("a")})),
        ("int enum", _span(attributes={"code": _Code.OK})),
        ("bytearray", _span(attributes={"raw": bytearray(b"ab")})),
        ("surrogate value", _span(attributes={"text": "\udc80", "kept": 1})),
        ("surrogate in an event", _span(events=[SpanEvent("e", 1, {"t": ("a", "\ud800")})])),
        ("nested deeply", _span(attributes={"deep": deep})),
        ("list of objects", _span(events=[SpanEvent("e", 1, {"l": [object()]})])),
        ("int subclass time", _span(start=True)),
    ]


@pytest.mark.parametrize("case", range(len(_declined())), ids=[c for c, _ in _declined()])
def test_spans_it_does_not_cover_are_encoded_in_python(native: ModuleType, case: int) -> None:
    _, span = _declined()[case]
    assert native.encode_span(span) is None
    with_native, python = _both(span)
    assert with_native == python
    ExportTraceServiceRequest.FromString(with_native)


def test_a_batch_mixes_both_encoders(native: ModuleType) -> None:
    spans = [_span(attributes={"n": n}) for n in range(3)]
    spans.insert(1, _declined()[0][1])
    with_native = SpanEncoder(RESOURCE).encode(spans)
    saved, otlp_wire.NATIVE = otlp_wire.NATIVE, None
    try:
        assert with_native == SpanEncoder(RESOURCE).encode(spans)
    finally:
        otlp_wire.NATIVE = saved
    request = ExportTraceServiceRequest.FromString(with_native)
    assert len(request.resource_spans[0].scope_spans[0].spans) == 4


def test_a_name_utf8_cannot_carry_fails_as_in_python(native: ModuleType) -> None:
    span = _span("\ud800")
    assert native.encode_span(span) is None
    with pytest.raises(UnicodeEncodeError):
        SpanEncoder(RESOURCE).encode([span])


def test_other_objects_are_declined(native: ModuleType) -> None:
    assert native.encode_span(object()) is None
    span = _span()
    span.context = (1, 2, False, None, None, True)  # type: ignore[assignment]  # a plain tuple
    assert native.encode_span(span) is None
    span = _span()
    span.kind = 1  # type: ignore[assignment]
    assert native.encode_span(span) is None


class _SlottedSpan(LeanSpan):
    __slots__ = ()


class _NamedSpan(LeanSpan):
    __slots__ = ()

    @property  # type: ignore[override]
    def name(self) -> str:
        return "from a property"


def _as(kind: type[LeanSpan], span: LeanSpan) -> LeanSpan:
    other = kind.__new__(kind)
    for field in LeanSpan.__slots__:
        if not (kind is _NamedSpan and field == "name"):
            setattr(other, field, getattr(span, field))
    return other


def test_fields_are_read_as_python_reads_them(native: ModuleType) -> None:
    """The fields are read from the slots while the type's attributes are slots: a property
    in their place (on a subclass, or set on the class later) is what is encoded."""
    span = _span(attributes={"a": 1})
    named = _as(_NamedSpan, span)
    assert native.encode_span(named) == SpanEncoder(RESOURCE)._span(named)
    assert _decoded(named)[0].name == "from a property"
    slotted = _as(_SlottedSpan, span)
    assert native.encode_span(slotted) == SpanEncoder(RESOURCE)._span(slotted)
    assert _decoded(slotted)[0].name == span.name
    _SlottedSpan.name = property(lambda self: "changed")  # type: ignore[assignment,method-assign]
    try:
        assert native.encode_span(slotted) == SpanEncoder(RESOURCE)._span(slotted)
        assert _decoded(slotted)[0].name == "changed"
    finally:
        del _SlottedSpan.name
    assert _decoded(slotted)[0].name == span.name


def test_an_empty_slot_is_left_to_python(native: ModuleType) -> None:
    span = _span()
    del span.name
    assert native.encode_span(span) is None
    with pytest.raises(AttributeError):
        SpanEncoder(RESOURCE).encode([span])


# --------------------------------------------------------------------- the Python path


def test_python_remembers_no_float_zero_for_the_other(python_only: None) -> None:
    """``0.0 == -0.0`` (one hash): remembered by value, one would be written for the other."""
    encoder = SpanEncoder(RESOURCE)
    for first, second in ((0.0, -0.0), (-0.0, 0.0)):
        spans = [_span(attributes={"x": first}), _span(attributes={"x": second})]
        request = ExportTraceServiceRequest.FromString(encoder.encode(spans))
        signs = [
            math.copysign(1.0, span.attributes[0].value.double_value)
            for span in request.resource_spans[0].scope_spans[0].spans
        ]
        assert signs == [math.copysign(1.0, first), math.copysign(1.0, second)]


def test_the_python_encoder_serves_where_c_is_not_built(python_only: None) -> None:
    (decoded,) = _decoded(_span(attributes={"a": 1}))
    assert decoded.attributes[0].value.int_value == 1


def _decoded(span: LeanSpan) -> list[Any]:
    request = ExportTraceServiceRequest.FromString(SpanEncoder(RESOURCE).encode([span]))
    return list(request.resource_spans[0].scope_spans[0].spans)


# --------------------------------------------------------------------------- leaks


def _leak_span() -> LeanSpan:
    return _span(
        "call ünï",
        parent=SpanContext(1, 2, True),
        attributes={
            "id": f"req-{id(object())}",
            "big": 1 << 62,
            "f": 2.5,
            "t": ("a", 1, (2.0,)),
            "b": b"xy",
        },
        events=[SpanEvent("exception", 5, {"exception.message": "ünï", "n": None})],
        status=Status(StatusCode.ERROR, "boom ✓"),
    )


def test_encoding_keeps_no_references(native: ModuleType) -> None:
    spans = [_leak_span(), *(span for _, span in _declined())]
    for span in spans:
        objects = [
            span,
            span.name,
            span.context,
            span.parent,
            span.attributes,
            *span.attributes.values(),
            span.events,
            span.kind,
            span.status,
            span.status.status_code,
            span.status.description,
            span.links,
            span.start_time,
            span.end_time,
        ]
        objects = [o for o in objects if o is not None]  # None's count is the process's
        native.encode_span(span)
        before = [sys.getrefcount(o) for o in objects]
        for _ in range(1000):
            native.encode_span(span)
        assert [sys.getrefcount(o) for o in objects] == before


def test_encoding_does_not_grow_memory(native: ModuleType) -> None:
    spans = [_leak_span(), _declined()[0][1], _declined()[5][1]]
    encode = native.encode_span
    for _ in range(2000):
        for span in spans:
            encode(span)
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(20_000):
            for span in spans:
                encode(span)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert end - start < 64 * 1024
    rss = _rss()
    for _ in range(100_000):
        encode(spans[0])
    assert _rss() - rss < 4 * 1024 * 1024


def _rss() -> int:
    """The process's resident memory in bytes (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")
