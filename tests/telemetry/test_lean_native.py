"""The C span starter (`llmesh.services.telemetry._lean_native`) against the lean tracer's
Python ``start_span``: the same arguments give the same span, field by field, ids included
(both draw them from ``random.getrandbits``, seeded alike here)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from types import MappingProxyType, ModuleType
from typing import Any

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

from llmesh.services.telemetry import lean_trace, w3c
from llmesh.services.telemetry.current import attach, attach_span, current, detach
from llmesh.services.telemetry.lean_trace import (
    LeanSpan,
    LeanTracer,
    LeanTracerProvider,
    SpanBatcher,
    always_on,
    parent_based,
    ratio_sampler,
)
from tests.support.native import built
from tests.support.tracing import MemorySpans

FIELDS = (
    "name",
    "context",
    "parent",
    "kind",
    "attributes",
    "events",
    "links",
    "status",
    "end_time",
    "scope",
    "_batcher",
    "_record_exception",
    "_set_status_on_exception",
)
REMOTE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED_REMOTE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


@pytest.fixture(scope="module")
def native() -> ModuleType:
    """The C starter; skips where it was not built, fails under CI."""
    return built(lean_trace._native(), "llmesh.services.telemetry._lean_native")


def _tracers(sampler: lean_trace.Sampler = always_on) -> tuple[LeanTracer, LeanTracer]:
    """Two tracers of one sink: one starting spans in C, one in Python."""
    sink = MemorySpans()
    in_c = LeanTracer("scope", "1.0", None, sampler, sink)
    saved = lean_trace.NATIVE_STARTS
    lean_trace.NATIVE_STARTS = False
    try:
        in_python = LeanTracer("scope", "1.0", None, sampler, sink)
    finally:
        lean_trace.NATIVE_STARTS = saved
    in_python._batcher = in_c._batcher
    return in_c, in_python


def _fields(span: Any) -> dict[str, Any]:
    if type(span) is not LeanSpan:
        return {"type": type(span).__name__, "context": span.get_span_context()}
    fields = {name: getattr(span, name) for name in FIELDS}
    fields["scope"] = (span.scope.name, span.scope.version)
    fields["context_type"] = type(span.context)
    return fields


def _same(
    native_tracer: LeanTracer,
    python_tracer: LeanTracer,
    start: Callable[[LeanTracer], Any],
    *,
    same_start: bool = False,
) -> Any:
    random.seed(1234)
    made_in_c = start(native_tracer)
    random.seed(1234)
    made_in_python = start(python_tracer)
    assert _fields(made_in_c) == _fields(made_in_python)
    if same_start:
        assert made_in_c.start_time == made_in_python.start_time
    elif type(made_in_c) is LeanSpan:
        assert abs(made_in_c.start_time - made_in_python.start_time) < 10**9
    return made_in_c


@pytest.fixture
def in_root() -> Iterator[None]:
    """Nothing current: every span a root."""
    token = attach(w3c.extract({}))
    yield
    detach(token)


def test_each_tracer_starts_spans_in_c(native: ModuleType) -> None:
    made_in_c, made_in_python = _tracers()
    assert type(made_in_c.start_span) is native.Starter
    assert made_in_python.start_span.__func__ is LeanTracer.start_span  # type: ignore[attr-defined]


def test_a_root_span(native: ModuleType, in_root: None) -> None:
    span = _same(*_tracers(), lambda t: t.start_span("root"))
    assert span.parent is None and span.kind is SpanKind.INTERNAL
    assert span.context.trace_flags == TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID
    assert span.context.is_valid and not span.context.is_remote
    assert span.attributes == {} and span.links == () and span.end_time is None


def test_attributes_are_copied_and_cleaned(native: ModuleType, in_root: None) -> None:
    given: dict[str, Any] = {"a": 1, "b": "x", "c": 2.5, "d": True, "e": (1, 2)}
    span = _same(*_tracers(), lambda t: t.start_span("plain", attributes=given))
    assert span.attributes == given and span.attributes is not given
    mixed = {"a": 1, "none": None, "list": [1, 2], "other": b"raw"}
    span = _same(*_tracers(), lambda t: t.start_span("mixed", attributes=mixed))
    assert span.attributes == {"a": 1, "list": (1, 2), "other": b"raw"}
    proxy = MappingProxyType({"k": "v", "none": None})  # not a dict: the Python method's
    span = _same(*_tracers(), lambda t: t.start_span("proxy", attributes=proxy))
    assert span.attributes == {"k": "v"}


def test_a_child_of_the_current_lean_span(native: ModuleType, in_root: None) -> None:
    made_in_c, made_in_python = _tracers()
    parent = made_in_c.start_span("parent")
    token = attach_span(parent)
    try:
        child = _same(made_in_c, made_in_python, lambda t: t.start_span("child"))
    finally:
        detach(token)
    assert child.parent is parent.context
    assert child.context.trace_id == parent.context.trace_id
    assert child.context.span_id != parent.context.span_id


def test_a_child_of_a_callers_remote_context(native: ModuleType) -> None:
    token = attach(w3c.extract({"traceparent": REMOTE, "tracestate": "k=v"}))
    try:
        span = _same(*_tracers(), lambda t: t.start_span("server", kind=SpanKind.SERVER))
    finally:
        detach(token)
    assert span.parent.is_remote and span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.context.trace_state.to_header() == "k=v"
    assert span.context.trace_flags == TraceFlags.SAMPLED  # the parent's random flag: unset


def test_an_explicit_context_and_every_argument_by_position(
    native: ModuleType, in_root: None
) -> None:
    context = w3c.extract({"traceparent": REMOTE})
    link = Link(SpanContext(1, 2, False), {"k": "v"})

    def start(tracer: LeanTracer) -> Any:
        return tracer.start_span(
            "named", context, SpanKind.CLIENT, {"a": 1}, [link], 1_700_000_000_000_000_000, False
        )

    span = _same(*_tracers(), start, same_start=True)
    assert span.links == (link,) and span.start_time == 1_700_000_000_000_000_000
    assert span.parent.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span._record_exception is False and span._set_status_on_exception is True


def test_an_invalid_current_span_is_no_parent(native: ModuleType) -> None:
    token = attach_span(trace_api.INVALID_SPAN, w3c.extract({}))
    try:
        span = _same(*_tracers(), lambda t: t.start_span("root again"))
    finally:
        detach(token)
    assert span.parent is None


def test_unsampled_spans_are_non_recording(native: ModuleType, in_root: None) -> None:
    span = _same(*_tracers(ratio_sampler(0.0)), lambda t: t.start_span("dropped"))
    assert type(span) is trace_api.NonRecordingSpan
    assert span.get_span_context().trace_flags == TraceFlags.RANDOM_TRACE_ID
    token = attach(w3c.extract({"traceparent": UNSAMPLED_REMOTE}))
    try:
        span = _same(*_tracers(parent_based(always_on)), lambda t: t.start_span("follows"))
    finally:
        detach(token)
    assert type(span) is trace_api.NonRecordingSpan
    assert span.get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C


def test_as_current_span_and_end(native: ModuleType, in_root: None) -> None:
    made_in_c, _ = _tracers()
    sink = made_in_c._batcher
    assert isinstance(sink, MemorySpans)
    with made_in_c.start_as_current_span("outer") as outer:
        assert current().get(trace_api._SPAN_KEY) is outer  # type: ignore[attr-defined]
        with made_in_c.start_as_current_span("inner", kind=SpanKind.CLIENT) as inner:
            assert inner.parent is outer.get_span_context()
    assert [s.name for s in sink.get_finished_spans()] == ["inner", "outer"]
    assert all(s.end_time is not None for s in sink.get_finished_spans())


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing required argument 'name'"),
        (("a",), {"nope": 1}, "unexpected keyword argument 'nope'"),
        (("a",), {"name": "b"}, "multiple values for argument 'name'"),
        (tuple(range(9)), {}, "at most 8 arguments"),
    ],
)
def test_bad_calls_are_type_errors(
    native: ModuleType, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    made_in_c, _ = _tracers()
    with pytest.raises(TypeError, match=message):
        made_in_c.start_span(*args, **kwargs)


def _twins(native: ModuleType) -> tuple[LeanSpan, LeanSpan, MemorySpans]:
    made_in_c, _ = _tracers()
    sink = made_in_c._batcher
    assert isinstance(sink, MemorySpans)
    random.seed(7)
    first = made_in_c.start_span("twin", attributes={"a": 1}, start_time=5)
    random.seed(7)
    second = made_in_c.start_span("twin", attributes={"a": 1}, start_time=5)
    assert isinstance(first, LeanSpan) and isinstance(second, LeanSpan)
    return first, second, sink


def test_the_span_methods_are_the_c_ones(native: ModuleType) -> None:
    assert LeanSpan.end is not lean_trace.PYTHON_METHODS["end"]
    assert LeanSpan.set_attributes is not lean_trace.PYTHON_METHODS["set_attributes"]
    assert type(LeanSpan.__dict__["is_recording"]).__name__ == "instancemethod"


@pytest.mark.parametrize(
    "given",
    [
        {"b": "x", "c": 2.5, "d": True, "e": (1,)},
        {"b": None, "c": [1, 2], "d": b"raw", "a": 2},
        {},
        MappingProxyType({"m": 1, "n": None}),
    ],
)
def test_set_attributes_as_in_python(native: ModuleType, given: Any) -> None:
    in_c, in_python, _ = _twins(native)
    in_c.set_attributes(given)
    lean_trace.PYTHON_METHODS["set_attributes"](in_python, given)
    assert in_c.attributes == in_python.attributes
    in_c.end(9)
    in_c.set_attributes({"late": 1})  # an ended span takes nothing more
    assert "late" not in in_c.attributes


def test_end_as_in_python(native: ModuleType) -> None:
    in_c, in_python, sink = _twins(native)
    in_c.end()
    lean_trace.PYTHON_METHODS["end"](in_python)
    assert in_c.end_time is not None and abs(in_c.end_time - in_python.end_time) < 10**9
    in_c.end(1)  # ended once: the first end time stays, the sink gets it once
    assert in_c.end_time != 1
    assert sink.get_finished_spans() == (in_c, in_python)
    given, _, sink = _twins(native)
    given.end(end_time=42)  # by keyword: the Python method's
    given.end(43)
    assert given.end_time == 42 and sink.get_finished_spans() == (given,)


def test_is_recording_until_ended(native: ModuleType) -> None:
    span, _, _ = _twins(native)
    assert span.is_recording() is True
    span.end()
    assert span.is_recording() is False
    unset = LeanSpan.__new__(LeanSpan)  # no slot set: the Python method's error
    with pytest.raises(AttributeError, match="end_time"):
        unset.is_recording()
    with pytest.raises(TypeError):
        span.is_recording(1)


class _Kept:
    def __init__(self) -> None:
        self.batches: list[list[LeanSpan]] = []

    def export(self, spans: Any) -> bool:
        self.batches.append(list(spans))
        return True

    def shutdown(self) -> None:
        pass


def test_ending_into_a_span_batcher_queues_wakes_and_drops_as_its_add(
    native: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The common add (below capacity, no batch completed) is done in C; the rest is the
    Python method's, with the same queue, wake-up and drop count."""
    batcher = SpanBatcher(_Kept(), delay=60.0, batch=3, capacity=4)
    batcher._stopped = True  # the thread stopped: the queue stays as the ends leave it
    batcher._wake.set()
    batcher._thread.join()
    batcher._wake.clear()
    by_python: list[LeanSpan] = []
    python_add = SpanBatcher.add

    def add(self: SpanBatcher, span: LeanSpan) -> None:
        by_python.append(span)
        python_add(self, span)

    monkeypatch.setattr(SpanBatcher, "add", add)
    tracer = LeanTracerProvider({"service.name": "t"}, batcher).get_tracer("t")
    spans = [tracer.start_span(f"s{i}") for i in range(5)]
    assert all(isinstance(s, LeanSpan) for s in spans)
    for span in spans[:2]:
        span.end()
    assert list(batcher._queue) == spans[:2] and by_python == []
    assert not batcher._wake.is_set()
    spans[2].end()  # completes a batch: Python's add, which wakes the thread
    assert by_python == [spans[2]] and batcher._wake.is_set()
    spans[3].end()
    spans[4].end()  # past the capacity: dropped, counted
    assert list(batcher._queue) == spans[:4] and by_python == [spans[2], spans[4]]
    assert batcher.dropped == 1

    class Other(SpanBatcher):
        pass

    other = Other(_Kept(), delay=60.0)
    try:
        span = LeanTracerProvider({}, other).get_tracer("t").start_span("o")
        span.end()  # another batcher type: always its own add
        assert by_python[-1] is span and list(other._queue) == [span]
    finally:
        other.shutdown()


def test_the_simple_methods_as_in_python(native: ModuleType) -> None:
    python = lean_trace.PYTHON_METHODS
    in_c, in_python, _ = _twins(native)
    assert in_c.get_span_context() is in_c.context
    assert python["get_span_context"](in_python) is in_python.context
    for span, set_attribute, update_name in (
        (in_c, type(in_c).set_attribute, type(in_c).update_name),
        (in_python, python["set_attribute"], python["update_name"]),
    ):
        set_attribute(span, "b", [1, 2])  # a list kept as a tuple
        set_attribute(span, "c", None)  # None left out
        set_attribute(span, key="d", value="x")  # by keyword: the Python method's
        update_name(span, "renamed")
        span.end()
        set_attribute(span, "late", 1)  # ended: nothing changes
        update_name(span, "late")
    assert in_c.attributes == in_python.attributes == {"a": 1, "b": (1, 2), "d": "x"}
    assert in_c.name == in_python.name == "renamed"
    unset = LeanSpan.__new__(LeanSpan)  # no slot set: the Python methods' errors
    with pytest.raises(AttributeError):
        unset.get_span_context()
    with pytest.raises(AttributeError):
        unset.set_attribute("k", 1)
    with pytest.raises(TypeError):
        in_c.update_name()
