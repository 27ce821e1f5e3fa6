"""Sending encoded span batches to an OTLP collector, over gRPC or HTTP (protobuf).

`wire_exporter` builds the exporter `TracingSettings` ask for; each encodes a batch with
`llmesh.services.telemetry.otlp_wire.SpanEncoder` and sends the bytes as they are (the gRPC
call has no serializer: the request already is the message). Both read the standard
variables the SDK's OTLP exporters read (``OTEL_EXPORTER_OTLP[_TRACES]_HEADERS``,
``_TIMEOUT`` in seconds, ``_COMPRESSION`` ``gzip``, ``_CERTIFICATE`` for ``https``), and
retry a batch the collector could not take for now (gRPC ``UNAVAILABLE`` and the like, HTTP
429/502/503/504) with exponential back-off within the timeout, as the SDK's do.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import grpc
from opentelemetry.util.re import parse_env_headers

from llmesh.services.telemetry.lean_trace import LeanSpan
from llmesh.services.telemetry.otlp_wire import SpanEncoder
from llmesh.services.telemetry.settings import TracingSettings

__all__ = ["GrpcSpanExporter", "HttpSpanExporter", "wire_exporter"]

_log = logging.getLogger("llmesh.telemetry")

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_RETRYABLE_HTTP = frozenset({429, 502, 503, 504})


def _env(env: Mapping[str, str], name: str) -> str | None:
    """``OTEL_EXPORTER_OTLP_TRACES_<name>``, else ``OTEL_EXPORTER_OTLP_<name>``."""
    return env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}")


class _Options:
    """What the OTLP variables say about how to send (headers, timeout, gzip, certificate)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        headers = _env(env, "HEADERS")
        self.headers = dict(parse_env_headers(headers, liberal=True)) if headers else {}
        self.timeout = float(_env(env, "TIMEOUT") or 10)
        self.gzip = (_env(env, "COMPRESSION") or "").strip().lower() == "gzip"
        self.certificate = _env(env, "CERTIFICATE")


class _Retrying:
    """Export with back-off (1 s, 2 s, 4 s...) while the failure is a passing one."""

    def __init__(self, resource: Mapping[str, Any], options: _Options) -> None:
        self._encoder = SpanEncoder(resource)
        self._options = options
        self._stopped = False

    def export(self, spans: Sequence[LeanSpan]) -> bool:
        body = self._encoder.encode(spans)
        deadline = time.monotonic() + self._options.timeout
        delay = 1.0
        while True:
            retry, problem = self._send(body, max(deadline - time.monotonic(), 0.1))
            if problem is None:
                return True
            if not retry or self._stopped or time.monotonic() + delay > deadline:
                _log.warning("%d spans not exported: %s", len(spans), problem)
                return False
            time.sleep(delay)
            delay *= 2

    def _send(self, body: bytes, timeout: float) -> tuple[bool, str | None]:
        """Send one request: (whether to retry, the problem) or (False, None) when done."""
        raise NotImplementedError

    def shutdown(self) -> None:
        self._stopped = True


class GrpcSpanExporter(_Retrying):
    """OTLP/gRPC: ``TraceService/Export`` on `endpoint` (``http(s)://host:port`` or
    ``host:port``; TLS for ``https``)."""

    def __init__(
        self, endpoint: str | None, resource: Mapping[str, Any], env: Mapping[str, str]
    ) -> None:
        options = _Options(env)
        super().__init__(resource, options)
        endpoint = endpoint or "http://localhost:4317"
        parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
        target = parts.netloc or endpoint
        compression = grpc.Compression.Gzip if options.gzip else None
        if parts.scheme == "https":
            roots = None
            if options.certificate:
                with open(options.certificate, "rb") as file:
                    roots = file.read()
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            self._channel = grpc.secure_channel(target, credentials, compression=compression)
        else:
            self._channel = grpc.insecure_channel(target, compression=compression)
        self._call = self._channel.unary_unary(_EXPORT, _registered_method=True)
        self._metadata = tuple(options.headers.items()) or None
        self.target = target

    def _send(self, body: bytes, timeout: float) -> tuple[bool, str | None]:
        try:
            self._call(body, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            code = err.code()  # type: ignore[attr-defined]
            return code in _RETRYABLE, f"{code.name} from {self.target}"
        return False, None

    def shutdown(self) -> None:
        super().shutdown()
        self._channel.close()


class HttpSpanExporter(_Retrying):
    """OTLP/HTTP with protobuf bodies, POSTed to `endpoint` (the full URL, ``/v1/traces``)."""

    def __init__(
        self, endpoint: str | None, resource: Mapping[str, Any], env: Mapping[str, str]
    ) -> None:
        options = _Options(env)
        super().__init__(resource, options)
        self.endpoint = endpoint or "http://localhost:4318/v1/traces"
        parts = urlsplit(self.endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": "llmesh",
            **options.headers,
        }
        if options.gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                context = ssl.create_default_context(cafile=self._options.certificate)
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=context
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=timeout
                )
        return self._connection

    def _send(self, body: bytes, timeout: float) -> tuple[bool, str | None]:
        if self._options.gzip:
            body = gzip.compress(body)
        try:
            connection = self._connect(timeout)
            connection.timeout = timeout
            connection.request("POST", self._path, body, self._headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as err:
            self._close()
            return True, f"{type(err).__name__} from {self.endpoint}: {err}"
        if response.will_close:
            self._close()
        if 200 <= response.status < 300:
            return False, None
        return response.status in _RETRYABLE_HTTP, f"HTTP {response.status} from {self.endpoint}"

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def shutdown(self) -> None:
        super().shutdown()
        self._close()


def wire_exporter(
    settings: TracingSettings, resource: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> GrpcSpanExporter | HttpSpanExporter:
    """The OTLP exporter `settings` ask for (the protocol and endpoint)."""
    env = os.environ if env is None else env
    if settings.protocol == "http/protobuf":
        return HttpSpanExporter(settings.endpoint, resource, env)
    return GrpcSpanExporter(settings.endpoint, resource, env)
