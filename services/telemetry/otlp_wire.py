"""Lean spans as an OTLP ``ExportTraceServiceRequest``, written straight to protobuf wire bytes.

The SDK's exporter builds a protobuf message object for every span, attribute and value
(then serializes them): some 40 us a span. This writes the bytes in one pass per batch,
and remembers the encoding of each attribute (key and value) it has seen lately, since
most of a span's attributes repeat from call to call (``gen_ai.operation.name=chat``,
``rpc.system=grpc``, the target, the provider). The output is the message opentelemetry-proto
defines (``opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest``), field for
field what the SDK's encoder sends (tests decode it with opentelemetry-proto's classes).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from llmesh.services.telemetry.lean_trace import _NO_STATE, _UNSET, LeanSpan, LeanTracer

__all__ = ["encode_resource", "encode_spans"]

_CACHE_LIMIT = 8192
"""Attribute encodings remembered; past it the memory is emptied (unique values churn it)."""

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
_SMALL = [bytes((i,)) for i in range(128)]

_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200


def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n > 127:
        out.append((n & 127) | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: its tag, the body's length, the body."""
    size = len(body)
    return tag + (_SMALL[size] if size < 128 else _varint(size)) + body


def _value(value: Any) -> bytes:
    """An ``AnyValue`` (the message's body)."""
    kind = type(value)
    if kind is str:
        return _field(b"\x0a", value.encode())
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{value} is outside int64")
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if kind is float:
        return b"\x21" + _DOUBLE(value)
    if value is None:
        return b""
    if kind is tuple or kind is list:  # before the ABC checks below, which are slow
        return _field(b"\x2a", b"".join([_field(b"\x0a", _value(v)) for v in value]))
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return _value(int(value))
    if isinstance(value, float):
        return _value(float(value))
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Mapping):
        return _field(
            b"\x32", b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        )
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _value(v)) for v in value))
    raise ValueError(f"an attribute cannot be a {kind.__name__}")


def _key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue`` (the message's body)."""
    return _field(b"\x0a", key.encode()) + _field(b"\x12", _value(value))


class _Attributes:
    """Encodes attribute maps as repeated ``KeyValue`` fields, remembering recent ones.

    A float (a latency, a cost) is nearly always new, so it is not remembered: its field is
    written from the key's remembered encoding and the value's eight bytes, and it does not
    push out the encodings that do repeat."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, type, Any], bytes] = {}
        self._keys: dict[str, bytes] = {}
        """Each key as a ``KeyValue.key`` field (the keys are a few dozen names)."""

    def encode(self, tag: bytes, attributes: Mapping[str, Any]) -> list[bytes]:
        seen = self._seen
        out = []
        for key, value in attributes.items():
            kind = type(value)
            if kind is float:
                named = self._keys.get(key)
                if named is None:
                    named = self._key(key)
                # KeyValue{key, value: AnyValue{double_value}}: 11 bytes after the key
                body = named + b"\x12\x09\x21" + _DOUBLE(value)
                size = len(body)
                out.append(tag + (_SMALL[size] if size < 128 else _varint(size)) + body)
                continue
            if kind is str or kind is bool or kind is int:
                memo = (key, kind, value)
                encoded = seen.get(memo)
                if encoded is None:
                    try:
                        encoded = _field(tag, _key_value(key, value))
                    except ValueError:
                        continue  # dropped, as the SDK's encoder logs and drops it
                    if len(seen) >= _CACHE_LIMIT:
                        seen.clear()
                    seen[memo] = encoded
                out.append(encoded)
                continue
            try:
                out.append(_field(tag, _key_value(key, value)))
            except (ValueError, TypeError):
                continue
        return out

    def _key(self, key: str) -> bytes:
        named = _field(b"\x0a", key.encode())
        if len(self._keys) >= _CACHE_LIMIT:
            self._keys.clear()
        self._keys[key] = named
        return named


def encode_resource(attributes: Mapping[str, Any]) -> bytes:
    """A ``Resource`` message with `attributes`."""
    return b"".join(_Attributes().encode(b"\x0a", attributes))


def _scope(tracer: LeanTracer) -> bytes:
    """The ``ScopeSpans.scope`` field of `tracer`'s spans."""
    body = _field(b"\x0a", tracer.name.encode())
    if tracer.version:
        body += _field(b"\x12", tracer.version.encode())
    return _field(b"\x0a", body)


def _trace_state(context: SpanContext) -> str:
    state = context.trace_state
    return ",".join(f"{k}={v}" for k, v in state.items()) if state else ""


class SpanEncoder:
    """Encodes batches of spans of one resource (one per exporter: its memory is its own)."""

    def __init__(self, resource: Mapping[str, Any]) -> None:
        self._resource = _field(b"\x0a", encode_resource(resource))
        self._attributes = _Attributes()
        self._scopes: dict[int, bytes] = {}

    def encode(self, spans: Sequence[LeanSpan]) -> bytes:
        """An ``ExportTraceServiceRequest`` holding `spans`."""
        by_scope: dict[int, list[bytes]] = {}
        scopes = self._scopes
        for span in spans:
            tracer = span.scope
            key = id(tracer)
            if key not in scopes:
                scopes[key] = _scope(tracer)
            encoded = self._span(span)
            group = by_scope.get(key)
            if group is None:
                by_scope[key] = [encoded]
            else:
                group.append(encoded)
        body = [self._resource]
        for key, encoded_spans in by_scope.items():
            scope_spans = scopes[key] + b"".join(encoded_spans)
            body.append(_field(b"\x12", scope_spans))
        return _field(b"\x0a", b"".join(body))

    def _span(self, span: LeanSpan) -> bytes:
        context = span.context
        parent = span.parent
        parts = [
            b"\x0a\x10",
            context.trace_id.to_bytes(16, "big"),
            b"\x12\x08",
            context.span_id.to_bytes(8, "big"),
        ]
        state = context.trace_state
        if state is not _NO_STATE and state:  # the shared empty state: no call to its len
            parts.append(_field(b"\x1a", _trace_state(context).encode()))
        if parent is not None:
            parts.append(b"\x22\x08")
            parts.append(parent.span_id.to_bytes(8, "big"))
        parts.append(_field(b"\x2a", span.name.encode()))
        parts.append(_SPAN_KINDS[id(span.kind)])
        parts.append(b"\x39")
        parts.append(_FIXED64(span.start_time))
        parts.append(b"\x41")
        parts.append(_FIXED64(span.end_time or span.start_time))
        parts.extend(self._attributes.encode(b"\x4a", span.attributes))
        if span.events:
            for name, timestamp, attributes in span.events:
                event = b"\x09" + _FIXED64(timestamp) + _field(b"\x12", name.encode())
                event += b"".join(self._attributes.encode(b"\x1a", attributes))
                parts.append(_field(b"\x5a", event))
        for link in span.links:
            linked = link.context
            body = (
                b"\x0a\x10"
                + linked.trace_id.to_bytes(16, "big")
                + b"\x12\x08"
                + linked.span_id.to_bytes(8, "big")
            )
            body += b"".join(self._attributes.encode(b"\x22", link.attributes or {}))
            body += b"\x35" + _FIXED32(_flags(linked))
            parts.append(_field(b"\x6a", body))
        status = span.status
        if status is _UNSET:  # most spans: no status set
            parts.append(b"\x7a\x00")
            parts.append(b"\x85\x01")
            parts.append(_FIXED32(_flags(parent)))
            return _field(b"\x12", b"".join(parts))
        code = _STATUS_CODES[id(status.status_code)]
        if code or status.description:
            body = _field(b"\x12", status.description.encode()) if status.description else b""
            parts.append(_field(b"\x7a", body + (b"\x18" + _SMALL[code] if code else b"")))
        else:
            parts.append(b"\x7a\x00")
        parts.append(b"\x85\x01")
        parts.append(_FIXED32(_flags(parent)))
        return _field(b"\x12", b"".join(parts))


def _flags(parent: SpanContext | None) -> int:
    if parent is not None and parent.is_remote:
        return _FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE
    return _FLAGS_HAS_IS_REMOTE


_SPAN_KINDS = {id(kind): b"\x30" + _SMALL[kind.value + 1] for kind in SpanKind}
"""The ``kind`` field by API `SpanKind` (OTLP's numbers are one more; by identity, as an
enum's value and hash are Python-level calls)."""
_STATUS_CODES = {id(code): code.value for code in StatusCode}


def encode_spans(resource: Mapping[str, Any], spans: Sequence[LeanSpan]) -> bytes:
    """An ``ExportTraceServiceRequest`` of `spans` (one-off; exporters keep a `SpanEncoder`)."""
    return SpanEncoder(resource).encode(spans)
