"""Tracing for one process: the tracer provider, gRPC interceptors, W3C context on the wire.

`install_tracing` is called once per service process, at start-up (never at import); with
tracing off it installs nothing and returns None, and `server_interceptors` /
`client_interceptors` return no interceptor at all, so a mesh without telemetry runs the
same code as before. The provider is the process's global one (OpenTelemetry's API finds
it from anywhere); its spans are batched and flushed at exit.

The gRPC interceptors are opentelemetry-instrumentation-grpc's aio ones. Its server
interceptor handles streaming methods only when the handler is an async generator
(opentelemetry-python-contrib issue 3066): every llmesh streaming method is one, since
`llmesh.services.common.rpc_guard.unary_stream` wraps them in its own generator, and a
stream that fails ends with ``context.abort``, which the interceptor's context records as
the span's error status. Health checks and reflection get no spans.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
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
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llmesh.services.telemetry.settings import TelemetrySettings, TracingSettings

__all__ = [
    "PROPAGATOR",
    "client_interceptors",
    "install_tracing",
    "server_interceptors",
    "trace_headers",
    "traced_method",
    "traceparent",
]

_log = logging.getLogger("llmesh.telemetry")

PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
"""W3C ``traceparent`` / ``tracestate`` and ``baggage``: what llmesh reads from callers and
sends on (to the next service and to providers)."""

_TRACEPARENT = TraceContextTextMapPropagator()


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


def _exporter(settings: TracingSettings) -> SpanExporter:
    if settings.exporter == "console":
        return ConsoleSpanExporter()
    if settings.protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=settings.endpoint)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    endpoint = settings.endpoint
    insecure = endpoint is None or not endpoint.startswith("https://")
    return GrpcExporter(endpoint=endpoint, insecure=insecure)


def install_tracing(
    settings: TelemetrySettings,
    service: str,
    *,
    exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """Make this process export spans as `settings` say (None, and nothing done, when off).

    `service` names the process (``gateway``, ``orchestrator``, ``processor``) in
    ``service.name`` (``llmesh-<service>``) unless a service name is configured; it is
    always in ``llmesh.service``. `exporter` replaces the configured one (tests).
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
    provider = TracerProvider(resource=resource, sampler=_sampler(tracing))
    provider.add_span_processor(BatchSpanProcessor(exporter or _exporter(tracing)))
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
    span: every method but health checks and reflection.

    The instrumentation's own filters (``negate(any_of(health_check(), service_prefix(...)))``)
    say the same, but find the method name through ``isinstance`` checks against gRPC's
    abstract classes and ``os.path`` for every call and every filter; this is one attribute
    read and one prefix test per call.
    """
    method = getattr(details, "method", "")
    if isinstance(method, bytes):  # grpc.aio clients see bytes (grpc issue 31092)
        method = method.decode()
    return not method.startswith(_UNTRACED)


def server_interceptors(settings: TelemetrySettings | None) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors a gRPC server of the mesh takes (none when tracing is off)."""
    if settings is None or not settings.tracing.enabled:
        return []
    return [aio_server_interceptor(filter_=traced_method)]  # type: ignore[no-untyped-call]


def client_interceptors(settings: TelemetrySettings | None) -> list[grpc.aio.ClientInterceptor]:
    """The interceptors a gRPC channel of the mesh takes (none when tracing is off)."""
    if settings is None or not settings.tracing.enabled:
        return []
    interceptors: list[grpc.aio.ClientInterceptor] = aio_client_interceptors(  # type: ignore[no-untyped-call]
        filter_=traced_method
    )
    return interceptors


def trace_headers(carrier: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The W3C headers of the current span (``traceparent``, ``tracestate``, ``baggage``),
    added to `carrier` if given; empty when no span is being recorded (tracing off)."""
    out: dict[str, str] = {} if carrier is None else dict(carrier)
    if trace.get_current_span().get_span_context().is_valid:
        PROPAGATOR.inject(out)
    return out


def traceparent() -> str | None:
    """The current span's ``traceparent`` (None: no span, e.g. tracing off)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _TRACEPARENT.inject(carrier)
    return carrier.get("traceparent")


def extract(headers: Mapping[str, str]) -> Any:
    """The context a caller's W3C headers carry (the current one when they carry none)."""
    return PROPAGATOR.extract(headers)
