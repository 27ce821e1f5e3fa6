"""The lean tracer's span (`LeanSpan`), and what it ends into (`SpanSink`).

A recording span of `llmesh.services.telemetry.lean_trace`'s tracer: OpenTelemetry's span
API over plain slots, attributes in a dict, ``exception`` events, the SDK's `Status` rules,
immutable once ended, handed to its sink on ``end``. Where the C extension
`llmesh.services.telemetry._lean_native` was built, the tracer puts C versions of the hot
methods on the class (`lean_trace.PYTHON_METHODS` names them); these stay the reference.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from time import time_ns
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util import types

if TYPE_CHECKING:
    from llmesh.services.telemetry.lean_trace import LeanTracer

__all__ = ["PLAIN", "UNSET_STATUS", "LeanSpan", "SpanEvent", "SpanSink"]

PLAIN = frozenset({str, bool, int, float, tuple})
"""Attribute value types kept as they are (None is left out, a list kept as a tuple)."""


class SpanSink(Protocol):
    """Where spans go as they end (a `SpanBatcher`; tests keep them in memory)."""

    def add(self, span: LeanSpan) -> None:
        """Take an ended span."""
        ...

    def force_flush(self) -> None:
        """Export what was taken so far."""
        ...

    def shutdown(self) -> None:
        """Export what is left; take no more."""
        ...


class SpanEvent(NamedTuple):
    """An event on a span (an exception, mostly)."""

    name: str
    timestamp: int
    attributes: dict[str, Any]


UNSET_STATUS = Status(StatusCode.UNSET)
"""The status of a span none was set on (one object: encoders recognise it by identity)."""


class LeanSpan(trace_api.Span):
    """A recording span (a sampled one; unsampled spans are `NonRecordingSpan`)."""

    __slots__ = (
        "_batcher",
        "_record_exception",
        "_set_status_on_exception",
        "attributes",
        "context",
        "end_time",
        "events",
        "kind",
        "links",
        "name",
        "parent",
        "scope",
        "start_time",
        "status",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        scope: LeanTracer,
        batcher: SpanSink,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        links: tuple[trace_api.Link, ...] = (),
        start_time: int | None = None,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.events: list[SpanEvent] | None = None
        self.links = links
        self.status = UNSET_STATUS
        self.start_time = start_time or time_ns()
        self.end_time: int | None = None
        self.scope = scope
        self._batcher = batcher
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self.end_time is None and value is not None:
            self.attributes[key] = tuple(value) if type(value) is list else value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self.end_time is not None:
            return
        if PLAIN.issuperset(map(type, attributes.values())):  # no None, no list: copied in C
            self.attributes.update(attributes)
            return
        own = self.attributes
        for key, value in attributes.items():
            if value is not None:
                own[key] = tuple(value) if type(value) is list else value

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        if self.end_time is not None:
            return
        if self.events is None:
            self.events = []
        self.events.append(SpanEvent(name, timestamp or time_ns(), dict(attributes or {})))

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time is not None:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is StatusCode.UNSET:
            return
        if self.status.status_code is StatusCode.OK:
            return  # OK is final
        self.status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        name = f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__name__
        event: dict[str, Any] = {
            "exception.type": name,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time or time_ns()
        self._batcher.add(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_val is not None and self.end_time is None:
            if self._record_exception:
                self.record_exception(exc_val, escaped=True)
            if self._set_status_on_exception:
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()
