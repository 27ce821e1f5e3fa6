"""Tracing for one process: the tracer provider, gRPC interceptors, W3C context on the wire.

`install_tracing` is called once per service process, at start-up (never at import); with
tracing off it installs nothing and returns None, `server_interceptors` returns no
interceptor and `traced_channel` the channel it was given, so a mesh without telemetry runs
the same code as before. The provider is the process's global one (OpenTelemetry's API finds
it from anywhere); its spans are batched and flushed at exit. Spans exported over OTLP come
from llmesh's lean provider (`llmesh.services.telemetry.lean_trace`), encoded to OTLP wire
bytes in one pass per batch; the console exporter keeps the SDK's provider.

The gRPC spans are those opentelemetry-instrumentation-grpc's aio interceptors make. By
default (``telemetry.tracing.grpc_instrumentation: llmesh``) they are made by
`llmesh.services.telemetry.grpc_spans` for less: a server interceptor, and on the client
side a channel wrapper (`traced_channel`) instead of interceptors. With ``opentelemetry``,
servers take the package's aio server interceptor and channels are created with its aio
client interceptors (`client_interceptors`; see `llmesh.services.telemetry.grpc_otel`); a
channel call site asks for both, and gets the one its mode uses. A stream that fails ends
with ``context.abort``, which the server's span records as its error status. Health checks
and reflection get no spans.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Span
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from llmesh.services.telemetry import grpc_otel, lean_trace, w3c
from llmesh.services.telemetry.current import current
from llmesh.services.telemetry.grpc_spans import ServerSpans, TracedChannel
from llmesh.services.telemetry.lean_trace import (
    LeanExporter,
    LeanSpan,
    LeanTracerProvider,
    SpanBatcher,
)
from llmesh.services.telemetry.otlp_send import wire_exporter
from llmesh.services.telemetry.settings import TelemetrySettings, TracingSettings

__all__ = [
    "PROPAGATOR",
    "call_trace_id",
    "client_interceptors",
    "install_tracing",
    "server_interceptors",
    "trace_headers",
    "trace_line",
    "traced_channel",
    "traced_method",
    "traceparent",
]

_log = logging.getLogger("llmesh.telemetry")

PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
"""W3C ``traceparent`` / ``tracestate`` and ``baggage``: what llmesh reads from callers and
sends on (to the next service and to providers; `llmesh.services.telemetry.w3c` does the
same in fewer steps)."""


def _sampler(settings: TracingSettings) -> Sampler:
    root: Sampler
    kind = settings.sampler.removeprefix("parentbased_")
    if kind == "always_off":
        root = ALWAYS_OFF
    elif kind == "traceidratio":
        root = TraceIdRatioBased(settings.sampler_arg)
    else:
        root = ALWAYS_ON
    return ParentBased(root) if settings.sampler.startswith("parentbased_") else root


def _lean_sampler(settings: TracingSettings) -> tuple[lean_trace.Sampler, str]:
    """The lean provider's sampler for `settings`, and its description (the SDK's words)."""
    kind = settings.sampler.removeprefix("parentbased_")
    root: lean_trace.Sampler
    if kind == "always_off":
        root, description = lean_trace.always_off, "AlwaysOffSampler"
    elif kind == "traceidratio":
        root = lean_trace.ratio_sampler(settings.sampler_arg)
        description = f"TraceIdRatioBased{{{settings.sampler_arg}}}"
    else:
        root, description = lean_trace.always_on, "AlwaysOnSampler"
    if settings.sampler.startswith("parentbased_"):
        return lean_trace.parent_based(root), f"ParentBased{{root:{description}}}"
    return root, description


def _console() -> SpanExporter:
    return ConsoleSpanExporter()


_BATCH_VARIABLES = {
    "OTEL_BSP_SCHEDULE_DELAY": ("delay", 5000),
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": ("batch", 512),
    "OTEL_BSP_MAX_QUEUE_SIZE": ("capacity", 2048),
}
"""The SDK's batch processor variables: (`SpanBatcher` argument, default)."""


def _batch_options(env: Mapping[str, str]) -> dict[str, float]:
    """`SpanBatcher`'s options from the ``OTEL_BSP_*`` variables (the delay in ms)."""
    options: dict[str, float] = {}
    for name, (option, default) in _BATCH_VARIABLES.items():
        text = env.get(name)
        try:
            value = int(text) if text else default
        except ValueError:
            _log.warning("%s=%r is not a whole number: %d is used", name, text, default)
            value = default
        if value <= 0:
            value = default
        options[option] = value / 1000 if option == "delay" else value
    return options


def install_tracing(
    settings: TelemetrySettings,
    service: str,
    *,
    exporter: LeanExporter | None = None,
) -> LeanTracerProvider | TracerProvider | None:
    """Make this process export spans as `settings` say (None, and nothing done, when off).

    `service` names the process (``gateway``, ``orchestrator``, ``processor``) in
    ``service.name`` (``llmesh-<service>``) unless a service name is configured; it is
    always in ``llmesh.service``. OTLP export (and `exporter`, which replaces it: tests)
    runs on the lean provider; the console exporter on the SDK's. The provider is shut down
    (its last spans exported) at exit.
    """
    tracing = settings.tracing
    if not tracing.enabled:
        return None
    resource = Resource.create(
        {
            SERVICE_NAME: settings.service_name or f"llmesh-{service}",
            "llmesh.service": service,
        }
    )
    provider: LeanTracerProvider | TracerProvider
    if tracing.exporter == "console" and exporter is None:
        provider = TracerProvider(resource=resource, sampler=_sampler(tracing))
        provider.add_span_processor(BatchSpanProcessor(_console()))
    else:
        attributes = dict(resource.attributes)
        sink = exporter or wire_exporter(tracing, attributes)
        sampler, description = _lean_sampler(tracing)
        batcher = SpanBatcher(sink, **_batch_options(os.environ))  # type: ignore[arg-type]
        provider = LeanTracerProvider(attributes, batcher, sampler, description)
        atexit.register(provider.shutdown)
    trace.set_tracer_provider(provider)
    _log.info(
        "tracing on: %s spans to %s (%s), sampler %s",
        tracing.exporter,
        tracing.endpoint or "the protocol's default endpoint",
        tracing.protocol,
        tracing.sampler,
    )
    return provider


_UNTRACED = ("/grpc.health.v1.Health/", "/grpc.reflection.")
"""Methods that get no span: health checks and server reflection."""


def traced_method(details: Any) -> bool:
    """Whether a call (its `grpc.HandlerCallDetails` or `grpc.aio.ClientCallDetails`) gets a
    span: every method but health checks and reflection."""
    method = getattr(details, "method", "")
    if isinstance(method, bytes):  # grpc.aio clients see bytes (grpc issue 31092)
        method = method.decode()
    return not _untraced(method)


def _untraced(method: str) -> bool:
    return method.startswith(_UNTRACED)


def _instrumented_by(settings: TelemetrySettings | None, instrumentation: str) -> bool:
    """Whether tracing is on and `instrumentation` makes the gRPC spans."""
    if settings is None or not settings.tracing.enabled:
        return False
    return settings.tracing.grpc_instrumentation == instrumentation


def server_interceptors(settings: TelemetrySettings | None) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors a gRPC server of the mesh takes (none when tracing is off)."""
    if settings is None or not settings.tracing.enabled:
        return []
    if _instrumented_by(settings, "opentelemetry"):
        return [grpc_otel.server_interceptor(traced_method)]
    return [ServerSpans(_untraced)]


def client_interceptors(settings: TelemetrySettings | None) -> list[grpc.aio.ClientInterceptor]:
    """The interceptors a gRPC channel of the mesh is created with: the instrumentation's
    aio client interceptors when it makes the gRPC spans, else none (tracing off, or
    llmesh's own spans, which `traced_channel` makes)."""
    if not _instrumented_by(settings, "opentelemetry"):
        return []
    return grpc_otel.client_interceptors(traced_method)


def traced_channel(
    channel: grpc.aio.Channel, settings: TelemetrySettings | None
) -> grpc.aio.Channel:
    """`channel`, its calls traced when tracing is on and llmesh makes the gRPC spans (as it
    is otherwise: off, or traced by the interceptors it was created with)."""
    if not _instrumented_by(settings, "llmesh"):
        return channel
    return TracedChannel(channel, _untraced)


def trace_headers(carrier: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The W3C headers of the current span (``traceparent``, ``tracestate``, ``baggage``),
    added to `carrier` if given; empty when no span is being recorded (tracing off)."""
    out: dict[str, str] = {} if carrier is None else dict(carrier)
    context = current()
    span = context.get(_SPAN_KEY)
    if type(span) is LeanSpan:  # the common case, without the ABC's isinstance check
        w3c.inject_ids(span.context, context, out)  # a lean span's ids are valid
    elif isinstance(span, Span):
        ids = span.get_span_context()
        if ids.is_valid:
            w3c.inject_ids(ids, context, out)
    return out


def trace_line() -> bytes | None:
    """What `trace_headers` would send, as a header line, when it is just the current lean
    span's ``traceparent`` (no trace state, no baggage): ``traceparent: ...\r\n``, written
    from the span's ids (no dict, no header checks: hex digits only). ``b""`` when no span is
    being recorded (tracing off); None when there is more to send, for `trace_headers`."""
    context = current()
    span = context.get(_SPAN_KEY)
    if span is None:
        return b""
    if type(span) is LeanSpan:
        trace_id, span_id, _, flags, state, _ = span.context  # a SpanContext is a tuple
        if (state is DEFAULT_TRACE_STATE or not state) and not context.get(_BAGGAGE_KEY):
            return f"traceparent: {w3c.traceparent_of(trace_id, span_id, flags)}\r\n".encode()
    return None


def traceparent() -> str | None:
    """The current span's ``traceparent`` (None: no span, e.g. tracing off)."""
    ids = trace.get_current_span().get_span_context()
    if not ids.is_valid:
        return None
    return w3c.traceparent_of(ids.trace_id, ids.span_id, ids.trace_flags)


def call_trace_id(metadata: Iterable[tuple[str, Any]] | None = None) -> str:
    """The trace id (32 lower-case hex digits) a call belongs to: the current span's, else
    the caller's ``traceparent`` in `metadata` when it is valid (tracing off, the id is still
    the caller's trace); empty when there is neither."""
    span = current().get(_SPAN_KEY)  # what trace.get_current_span() reads, in one step
    if type(span) is LeanSpan:
        return w3c.trace_id_text(span.context[0])  # a SpanContext is a tuple: [0] is the id
    if isinstance(span, Span):
        ids = span.get_span_context()
        if ids.is_valid:
            return w3c.trace_id_text(ids.trace_id)
    for key, value in metadata or ():
        if key == "traceparent" and isinstance(value, str):
            remote = w3c.trace_context(value)
            return "" if remote is None else w3c.trace_id_text(remote.trace_id)
    return ""


def extract(headers: Mapping[str, str]) -> Any:
    """The context a caller's W3C headers carry (lower-case names; an empty context when
    they carry none)."""
    return w3c.extract(headers)
