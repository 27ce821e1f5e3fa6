"""The lean tracer: the OpenTelemetry API's behaviour (ids, parents, flags, status, events,
context), its samplers against the SDK's, and the batcher's thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from llmesh.services.telemetry import tracing
from llmesh.services.telemetry.lean_trace import (
    LeanSpan,
    LeanTracerProvider,
    SpanBatcher,
    always_off,
    parent_based,
    ratio_sampler,
)
from tests.telemetry.conftest import MemorySpans


def _provider(sampler: object = None) -> tuple[LeanTracerProvider, MemorySpans]:
    sink = MemorySpans()
    if sampler is None:
        return LeanTracerProvider({"service.name": "t"}, sink), sink
    return LeanTracerProvider({"service.name": "t"}, sink, sampler), sink  # type: ignore[arg-type]


def test_children_share_the_trace_and_name_their_parent() -> None:
    provider, sink = _provider()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("outer", kind=SpanKind.SERVER) as outer:
        inner = tracer.start_span(
            "inner", kind=SpanKind.CLIENT, attributes={"a": [1, 2], "n": None}
        )
        inner.end()
        assert trace.get_current_span() is outer
    assert trace.get_current_span() is trace.INVALID_SPAN
    first, second = sink.get_finished_spans()
    assert (first.name, second.name) == ("inner", "outer")
    assert first.context.trace_id == second.context.trace_id
    assert first.parent == second.context and second.parent is None
    assert first.kind is SpanKind.CLIENT and first.attributes == {"a": (1, 2)}
    # sampled, and the trace id is random (W3C trace context level 2)
    assert second.context.trace_flags == TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID
    assert first.start_time <= first.end_time  # type: ignore[operator]
    assert provider.get_tracer("t") is tracer


def test_a_remote_parent_is_followed_with_its_flags_and_state() -> None:
    provider, sink = _provider()
    state = TraceState([("vendor", "x")])
    remote = SpanContext(0xABC, 0xDEF, True, TraceFlags(TraceFlags.SAMPLED), state)
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    provider.get_tracer("t").start_span("child", context=parent).end()
    (span,) = sink.get_finished_spans()
    assert span.context.trace_id == 0xABC and span.parent == remote
    assert span.context.trace_flags == TraceFlags.SAMPLED  # not marked random: the caller chose
    assert span.context.trace_state == state and not span.context.is_remote


def test_status_ok_is_final_unset_is_ignored_and_ended_spans_do_not_change() -> None:
    provider, sink = _provider()
    span = provider.get_tracer("t").start_span("s")
    span.set_status(StatusCode.UNSET)
    assert span.status.status_code is StatusCode.UNSET  # type: ignore[attr-defined]
    span.set_status(Status(StatusCode.ERROR, "first"))
    span.set_status(StatusCode.OK)
    span.set_status(Status(StatusCode.ERROR, "late"))
    span.update_name("renamed")
    span.end()
    span.set_attribute("after", 1)
    span.set_attributes({"after": 2})
    span.update_name("too late")
    span.set_status(StatusCode.ERROR)
    span.add_event("late")
    span.end()  # twice: exported once
    (done,) = sink.get_finished_spans()
    assert done.status.status_code is StatusCode.OK
    assert done.name == "renamed" and done.attributes == {} and done.events is None
    assert not done.is_recording()


def test_an_exception_leaving_the_current_span_is_recorded_as_the_flags_say() -> None:
    provider, sink = _provider()
    tracer = provider.get_tracer("t")
    with pytest.raises(ValueError), tracer.start_as_current_span("default"):
        raise ValueError("boom")
    with (
        pytest.raises(KeyError),
        tracer.start_as_current_span(
            "quiet", record_exception=False, set_status_on_exception=False
        ),
    ):
        raise KeyError("k")
    loud, quiet = sink.get_finished_spans()
    assert loud.status.status_code is StatusCode.ERROR
    assert loud.status.description == "ValueError: boom"
    assert loud.events is not None and loud.events[0].name == "exception"
    assert loud.events[0].attributes["exception.type"] == "ValueError"
    assert "raise ValueError" in loud.events[0].attributes["exception.stacktrace"]
    assert quiet.status.status_code is StatusCode.UNSET and quiet.events is None


def test_a_span_current_without_ending_on_exit_stays_open() -> None:
    provider, sink = _provider()
    with provider.get_tracer("t").start_as_current_span("open", end_on_exit=False) as span:
        pass
    assert span.is_recording() and sink.get_finished_spans() == ()
    span.end()
    assert sink.get_finished_spans() == (span,)


def test_unsampled_spans_record_nothing_but_carry_the_context() -> None:
    provider, sink = _provider(always_off)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("dropped") as span:
        assert not span.is_recording() and not isinstance(span, LeanSpan)
        ids = span.get_span_context()
        assert ids.is_valid and not ids.trace_flags.sampled
        assert tracing.traceparent() == f"00-{ids.trace_id:032x}-{ids.span_id:016x}-02"
        child = tracer.start_span("child")  # the same trace, unsampled
        assert child.get_span_context().trace_id == ids.trace_id
    assert sink.get_finished_spans() == ()


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5, 1.0])
def test_the_ratio_sampler_keeps_the_traces_the_sdks_keeps(ratio: float) -> None:
    sdk = TraceIdRatioBased(ratio)
    lean = ratio_sampler(ratio)
    ids = [(i * 0x9E3779B97F4A7C15_F39CC0605CEDC834) % (1 << 128) for i in range(1, 2000)]
    for trace_id in ids:
        expected = sdk.should_sample(None, trace_id, "s").decision.is_sampled()
        assert lean(None, trace_id) is expected


def test_parent_based_follows_the_parent_and_asks_the_root_for_roots() -> None:
    sampler = parent_based(always_off)
    sampled = SpanContext(1, 2, True, TraceFlags(TraceFlags.SAMPLED))
    unsampled = SpanContext(1, 2, False, TraceFlags(TraceFlags.DEFAULT))
    assert sampler(sampled, 1) and not sampler(unsampled, 1) and not sampler(None, 1)


def test_trace_headers_carry_a_lean_span() -> None:
    provider, _ = _provider()
    with provider.get_tracer("t").start_as_current_span("attempt") as span:
        ids = span.get_span_context()
        assert tracing.trace_headers()["traceparent"] == (
            f"00-{ids.trace_id:032x}-{ids.span_id:016x}-03"
        )


class _Exporter:
    def __init__(self, fail_first: bool = False, hold: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail_first = fail_first
        self.shut = False
        self.exporting = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def export(self, spans: Sequence[LeanSpan]) -> bool:
        self.exporting.set()
        self.release.wait(10)
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("collector gone")
        self.batches.append([s.name for s in spans])
        return True

    def shutdown(self) -> None:
        self.shut = True


def _spans(batcher: SpanBatcher, count: int, first: int = 0) -> None:
    provider = LeanTracerProvider({}, batcher)
    for i in range(first, first + count):
        provider.get_tracer("t").start_span(str(i)).end()


def test_the_batcher_exports_a_full_batch_at_once_and_the_rest_at_shutdown() -> None:
    exporter = _Exporter()
    batcher = SpanBatcher(exporter, delay=3600, batch=4)
    _spans(batcher, 4)
    deadline = time.monotonic() + 10  # the 4th span wakes the thread, long before the delay
    while not exporter.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert exporter.batches == [["0", "1", "2", "3"]]
    _spans(batcher, 3, first=4)
    batcher.shutdown()
    assert exporter.batches == [["0", "1", "2", "3"], ["4", "5", "6"]] and exporter.shut


def test_past_its_capacity_the_batcher_drops_new_spans() -> None:
    exporter = _Exporter(hold=True)
    batcher = SpanBatcher(exporter, delay=3600, batch=4, capacity=10)
    _spans(batcher, 4)
    assert exporter.exporting.wait(10)  # the thread holds the first batch, the queue fills
    _spans(batcher, 20, first=4)
    exporter.release.set()
    batcher.shutdown()
    names = [n for batch in exporter.batches for n in batch]
    assert names == [str(i) for i in range(14)] and batcher.dropped == 10


def test_the_batcher_survives_a_failing_export_and_flushes_on_demand() -> None:
    exporter = _Exporter(fail_first=True)
    batcher = SpanBatcher(exporter, delay=3600)
    _spans(batcher, 1)
    batcher.force_flush()  # fails: logged, not raised
    _spans(batcher, 2)
    batcher.force_flush()
    assert exporter.batches == [["0", "1"]]
    batcher.shutdown()
    batcher.shutdown()


def test_context_is_left_as_found_when_a_span_is_current() -> None:
    provider, _ = _provider()
    before = context.get_current()
    with provider.get_tracer("t").start_as_current_span("s"):
        assert context.get_current() is not before
    assert context.get_current() == before
