"""A lean implementation of OpenTelemetry's tracing API, for exporting every span cheaply.

The SDK's tracer spends tens of microseconds on each span: a sampling result object, a
lock, attribute validation into bounded mappings, a span processor chain, a queue with a
condition variable. `LeanTracerProvider` implements the same API (`opentelemetry.trace`)
with less: ids from ``random.getrandbits``, a sampling decision as a boolean, attributes
in a plain dict, and ended spans appended to a deque that a background thread drains in
batches (`SpanBatcher`), encoding each batch in one pass (`llmesh.services.telemetry.otlp_wire`);
the span itself is `llmesh.services.telemetry.lean_span`'s `LeanSpan`. Installed as the
process's provider, it serves everything that uses the global API: the gRPC spans
(`llmesh.services.telemetry.grpc_spans`), the call and attempt spans, the gateway's
middleware.

What it keeps of the SDK's behaviour: W3C ids and flags (sampled, random trace id), the
parent's trace state, the samplers llmesh offers (`llmesh.services.telemetry.samplers`),
`Status` rules (OK is final, UNSET is ignored), exceptions recorded as ``exception``
events, spans immutable once ended, the ``OTEL_BSP_*`` batch settings. What it leaves
out: span limits (llmesh's spans carry a few dozen attributes), links beyond their ids and
attributes, span processors.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Mapping
from types import ModuleType, TracebackType
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util import types

from llmesh.services.telemetry import current as _context
from llmesh.services.telemetry.current import attach_span, detach
from llmesh.services.telemetry.current import current as current_context
from llmesh.services.telemetry.lean_span import (
    PLAIN,
    UNSET_STATUS,
    LeanSpan,
    SpanEvent,
    SpanSink,
)
from llmesh.services.telemetry.samplers import (
    Sampler,
    always_off,
    always_on,
    parent_based,
    ratio_sampler,
)
from llmesh.services.telemetry.span_batcher import LeanExporter, SpanBatcher

__all__ = [
    "UNSET_STATUS",
    "LeanExporter",
    "LeanSpan",
    "LeanTracer",
    "LeanTracerProvider",
    "Sampler",
    "SpanBatcher",
    "SpanEvent",
    "SpanSink",
    "always_off",
    "always_on",
    "parent_based",
    "ratio_sampler",
]

_SAMPLED = TraceFlags.SAMPLED
_RANDOM = TraceFlags.RANDOM_TRACE_ID
_FLAGS = [TraceFlags(i) for i in range(256)]
_NO_STATE = DEFAULT_TRACE_STATE  # what SpanContext gives a context made without one


class _Current:
    """`LeanTracer.start_as_current_span`'s context manager: the span current inside."""

    __slots__ = ("end_on_exit", "span", "token")

    def __init__(self, span: trace_api.Span, end_on_exit: bool) -> None:
        self.span = span
        self.end_on_exit = end_on_exit
        self.token: object | None = None

    def __enter__(self) -> trace_api.Span:
        self.token = attach_span(self.span)
        return self.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        detach(self.token)  # type: ignore[arg-type]
        span = self.span
        if exc is None:
            pass
        elif isinstance(exc, Exception) and type(span) is LeanSpan and span.end_time is None:
            if span._record_exception:
                span.record_exception(exc)
            if span._set_status_on_exception:
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        if self.end_on_exit:
            span.end()


class LeanTracer(trace_api.Tracer):
    """Starts spans for one instrumentation scope."""

    def __init__(
        self,
        name: str,
        version: str | None,
        schema_url: str | None,
        sampler: Sampler,
        batcher: SpanSink,
    ) -> None:
        self.name = name
        self.version = version
        self.schema_url = schema_url
        self._sampler = sampler
        self._always = sampler is always_on
        self._batcher = batcher
        starter = _starter(self, None if self._always else sampler, batcher)
        if starter is not None:  # the same method in C, where it was built
            self.start_span = starter  # type: ignore[method-assign]

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: trace_api._Links = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        if context is None:  # the current context, read without current()'s call
            variable = _context._VARIABLE
            context = current_context() if variable is None else variable.get()
        current: Any = context.get(_SPAN_KEY)
        if current is None:
            parent: SpanContext | None = None
        elif type(current) is LeanSpan:
            parent = current.context
        elif type(current) is trace_api.NonRecordingSpan:  # a caller's remote context
            parent = current._context
        else:
            parent = current.get_span_context()
        # a SpanContext is a tuple (trace_id, span_id, is_remote, flags, state, is_valid)
        if parent is not None and parent[5]:
            trace_id, _, _, parent_flags, state, _ = parent
            flags = parent_flags & _RANDOM
        else:
            parent, trace_id, state = None, _bits(128) or _new_id(128), _NO_STATE
            flags = _RANDOM
        sampled = True if self._always else self._sampler(parent, trace_id)
        # SpanContext's own constructor checks the ids, which are valid here by construction
        span_context = tuple.__new__(
            SpanContext,
            (
                trace_id,
                _bits(64) or _new_id(64),
                False,
                _FLAGS[flags | _SAMPLED if sampled else flags],
                state,
                True,
            ),
        )
        if not sampled:
            return trace_api.NonRecordingSpan(span_context)
        if not attributes:
            own: dict[str, Any] = {}
        else:
            own = dict(attributes)
            if not PLAIN.issuperset(map(type, own.values())):
                own = _kept(own)
        return LeanSpan(
            name,
            span_context,
            parent,
            kind,
            own,
            self,
            self._batcher,
            record_exception,
            set_status_on_exception,
            tuple(links) if links else (),
            start_time,
        )

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: trace_api._Links = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> _Current:
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        return _Current(span, end_on_exit)


_bits = random.getrandbits


def _kept(attributes: dict[str, Any]) -> dict[str, Any]:
    """`attributes` without None values, lists as tuples."""
    return {
        key: tuple(value) if type(value) is list else value
        for key, value in attributes.items()
        if value is not None
    }


def _new_id(bits: int) -> int:
    value = random.getrandbits(bits)
    while not value:  # zero is the invalid id
        value = random.getrandbits(bits)
    return value


PYTHON_METHODS = {
    name: getattr(LeanSpan, name)
    for name in (
        "end",
        "set_attributes",
        "is_recording",
        "get_span_context",
        "set_attribute",
        "update_name",
    )
}
"""`LeanSpan`'s methods that have C versions, in Python (the C module puts its own on the
class; they call these for anything unusual, and tests compare both)."""

_NATIVE: list[ModuleType | None] = []
"""The C span starter's module, configured, once looked for (None: not built)."""


def _native() -> ModuleType | None:
    """`llmesh.services.telemetry._lean_native`, configured with this module's types, or None
    where it was not built (setup.py: it is optional) or does not fit them. Once configured,
    `LeanSpan`'s hot methods (``end``, ``set_attributes`` and the simple ones) are its C
    methods."""
    if not _NATIVE:
        try:
            module: ModuleType | None = importlib.import_module(
                "llmesh.services.telemetry._lean_native"
            )
            assert module is not None
            module.configure(
                LeanSpan,
                SpanContext,
                trace_api.NonRecordingSpan,
                _SPAN_KEY,
                _FLAGS,
                _NO_STATE,
                random.getrandbits,
                _kept,
                UNSET_STATUS,
                SpanKind.INTERNAL,
                _context,
                LeanTracer.start_span,
                SpanBatcher,
            )
            # the span's own hot methods too (the same effects; Python's for anything unusual)
            for name, method in module.span_methods(PYTHON_METHODS).items():
                setattr(LeanSpan, name, method)
        except (ImportError, TypeError):
            module = None
        _NATIVE.append(module)
    return _NATIVE[0]


def _starter(tracer: LeanTracer, sampler: Sampler | None, batcher: SpanSink) -> Any:
    """`tracer`'s ``start_span`` in C (sampling with `sampler`, None: every span), or None
    where the C starter was not built; `NATIVE_STARTS` turns it off."""
    module = _native() if NATIVE_STARTS else None
    return None if module is None else module.Starter(tracer, sampler, batcher)


NATIVE_STARTS = True
"""Whether new tracers start spans in C where the C starter was built (tests compare both)."""


class LeanTracerProvider(trace_api.TracerProvider):
    """The process's tracer provider: one sink for ended spans (a `SpanBatcher`), one
    resource, one sampler."""

    def __init__(
        self,
        resource: Mapping[str, types.AnyValue],
        batcher: SpanSink,
        sampler: Sampler = always_on,
        sampler_description: str = "AlwaysOnSampler",
    ) -> None:
        self.resource = dict(resource)
        """The resource's attributes (``service.name`` and the like)."""
        self.batcher = batcher
        self.sampler = sampler
        self.sampler_description = sampler_description
        self._tracers: dict[tuple[str, str | None, str | None], LeanTracer] = {}

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> LeanTracer:
        key = (instrumenting_module_name, instrumenting_library_version, schema_url)
        tracer = self._tracers.get(key)
        if tracer is None:
            tracer = LeanTracer(*key, self.sampler, self.batcher)
            self._tracers[key] = tracer
        return tracer

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export every span ended so far."""
        self.batcher.force_flush()
        return True

    def shutdown(self) -> None:
        """Export what is left and stop (at exit)."""
        self.batcher.shutdown()
