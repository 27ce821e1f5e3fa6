"""With OTLP configured, the same instruments are pushed to a collector (here a small
OTLP/HTTP receiver the test runs), the last batch when the service shuts down: the counters,
and the histograms with their buckets and the exemplars of a sampled span."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.trace import TracerProvider

from llmesh.services.common.metrics_settings import metrics_settings
from llmesh.services.telemetry import Metrics
from llmesh.services.telemetry.metrics import DURATION_BUCKETS


class Receiver(ThreadingHTTPServer):
    """Keeps every OTLP/HTTP metrics export it receives."""

    def __init__(self) -> None:
        self.exports: list[ExportMetricsServiceRequest] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.path == "/v1/metrics":
            self.server.exports.append(ExportMetricsServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_metrics_are_pushed_over_otlp_http(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "mesh-a",
    }
    section = {"metrics": {"enabled": True, "prometheus": False, "otlp": True}}
    settings = replace(metrics_settings(section, env), export_interval=3600)
    assert settings.endpoint == f"{endpoint}/v1/metrics"  # the signal's path, as OTLP says
    metrics = Metrics(settings, "orchestrator", env=env)
    metrics.calls.add(2, "chat", "ok", "none", "a/m", "acme")
    metrics.request_duration.record(0.5, "chat", "a", "m", "")  # outside any span
    with TracerProvider().get_tracer("test").start_as_current_span("call") as span:
        metrics.request_duration.record(0.03, "chat", "a", "m", "")
    metrics.shutdown()  # pushes what the hour-long interval has not
    (export,) = receiver.exports
    (resource,) = export.resource_metrics
    attrs = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert attrs["service.name"] == "mesh-a"
    names = {m.name: m for sm in resource.scope_metrics for m in sm.metrics}
    (point,) = names["llmesh.calls"].sum.data_points
    assert point.as_int == 2
    (duration,) = names["gen_ai.server.request.duration"].histogram.data_points
    assert names["gen_ai.server.request.duration"].unit == "s"
    assert list(duration.explicit_bounds) == list(DURATION_BUCKETS)
    assert list(duration.bucket_counts) == [0, 0, 1, 0, 0, 0, 1, *[0] * 8]
    assert (duration.count, duration.min, duration.max) == (2, 0.03, 0.5)
    assert duration.sum == pytest.approx(0.53)
    labels = {a.key: a.value.string_value for a in duration.attributes}
    assert labels == {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "a"} | {
        "gen_ai.request.model": "m"
    }
    (exemplar,) = duration.exemplars  # only the measurement under the sampled span
    assert exemplar.as_double == 0.03
    assert exemplar.trace_id == span.get_span_context().trace_id.to_bytes(16, "big")
