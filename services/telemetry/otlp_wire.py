"""Lean spans as an OTLP ``ExportTraceServiceRequest``, written straight to protobuf wire bytes.

The SDK's exporter builds a protobuf message object for every span, attribute and value
(then serializes them): some 40 us a span. This writes the bytes in one pass per batch,
and remembers the encoding of each attribute (key and value) it has seen lately, since
most of a span's attributes repeat from call to call (``gen_ai.operation.name=chat``,
``rpc.system=grpc``, the target, the provider). The output is the message opentelemetry-proto
defines (``opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest``), field for
field what the SDK's encoder sends (tests decode it with opentelemetry-proto's classes).

Where the optional C extension `llmesh.services.telemetry._otlp_native` was built (setup.py),
each span is written by its ``encode_span``, into the same bytes;
the spans it leaves out (a trace state, links, attribute values of other types, ints outside
int64, strings UTF-8 cannot carry) and every span where it was not built are encoded here.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceState
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from llmesh.services.telemetry.lean_span import UNSET_STATUS as _NO_STATUS
from llmesh.services.telemetry.lean_span import LeanSpan
from llmesh.services.telemetry.lean_trace import LeanTracer

__all__ = ["NATIVE", "encode_resource", "encode_spans"]


def _native() -> ModuleType | None:
    try:
        return importlib.import_module("llmesh.services.telemetry._otlp_native")
    except ImportError:
        return None


NATIVE = _native()
"""The C encoder (`_otlp_native`), None where it was not built: `SpanEncoder` reads it at
each batch (tests set it to None to encode in Python)."""

_CACHE_LIMIT = 8192
"""Attribute encodings remembered; past it the memory is emptied."""
_FRESH_LIMIT = 256
"""Values of one key remembered, past which its values are encoded each time (ids)."""

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
_SMALL = [bytes((i,)) for i in range(128)]

_IDS = struct.Struct(">2sQQ2sQ").pack
"""The ``trace_id`` and ``span_id`` fields: tags, lengths and the ids, big-endian."""
_PARENT = struct.Struct(">2sQ").pack
_IDS_PARENT = struct.Struct(">2sQQ2sQ2sQ").pack
"""The ``trace_id``, ``span_id`` and ``parent_span_id`` fields."""
_TIMES = struct.Struct("<BQBQ").pack
"""The ``start_time_unix_nano`` and ``end_time_unix_nano`` fields (fixed64)."""
_LOW64 = (1 << 64) - 1

_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200
_LOCAL_PARENT = b"\x85\x01" + _FIXED32(_FLAGS_HAS_IS_REMOTE)
_REMOTE_PARENT = b"\x85\x01" + _FIXED32(_FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE)
"""The span's ``flags`` field: whether its parent is remote is known."""
_LOCAL_TAIL = b"\x7a\x00" + _LOCAL_PARENT
_REMOTE_TAIL = b"\x7a\x00" + _REMOTE_PARENT
"""An unset ``status`` and the ``flags`` field (the last two fields of most spans)."""


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


def _texts(value: Any) -> bool:
    """Whether `value` is a tuple of strings: one remembered by value cannot be mistaken for
    another type's (``(True,) == (1,)``, but no string equals a number)."""
    return type(value) is tuple and all(type(v) is str for v in value)


def _float(value: Any) -> bool:
    """Whether `value` is a float that may be remembered by value: not a zero, as ``0.0`` and
    ``-0.0`` are equal (and hash alike) but are not the same double."""
    return type(value) is float and value != 0.0


class _Attributes:
    """Encodes attribute maps as repeated ``KeyValue`` fields of one field tag, remembering
    recent ones.

    The memory is keyed by (key, type, value), so values equal across types (``True``,
    ``1``, ``1.0``) keep their own encodings, and looked up for a whole map at once
    (``map`` over the items, no Python step per attribute); only attributes not remembered
    are encoded one by one, a string value (most of them) straight from its key's encoded
    prefix. A key whose values keep changing (a request id, a response id) stops being
    remembered after `_FRESH_LIMIT` values, so it neither fills the memory nor has it
    emptied.
    """

    def __init__(self, tag: bytes) -> None:
        self._tag = tag
        self._seen: dict[tuple[str, type, Any], bytes] = {}
        self._keys: dict[str, bytes] = {}
        """Each key's ``KeyValue.key`` field, encoded."""
        self._fresh: dict[str, int] = {}
        """How many values of each key were remembered (past `_FRESH_LIMIT`: none more)."""

    def encode(self, attributes: Mapping[str, Any]) -> list[bytes]:
        """The ``KeyValue`` fields of `attributes`, in order (an empty one for a value
        protobuf cannot carry: it is left out, as the SDK's encoder logs and drops it)."""
        values = attributes.values()
        try:
            found: list[bytes | None] = list(
                map(self._seen.get, zip(attributes, map(type, values), values, strict=True))
            )
        except TypeError:  # an unhashable value: encode each, remember none
            return [self._one(key, value) for key, value in attributes.items()]
        if not all(found):  # a None: not remembered (what is remembered is never empty)
            self._fill(found, list(attributes), list(values))
        return found  # type: ignore[return-value]

    def _fill(self, found: list[bytes | None], keys: list[str], values: list[Any]) -> None:
        """Encode the attributes `found` has no encoding for, and remember them."""
        seen, fresh, prefixes, tag = self._seen, self._fresh, self._keys, self._tag
        at = found.index(None)
        while True:
            key, value = keys[at], values[at]
            kind = type(value)
            prefix = prefixes.get(key)
            if kind is str and prefix is not None:  # KeyValue{key, value: AnyValue{string}}
                text = value.encode()
                size = len(text)
                any_value = b"\x0a" + (_SMALL[size] if size < 128 else _varint(size)) + text
                size = len(any_value)
                body = prefix + b"\x12" + (_SMALL[size] if size < 128 else _varint(size))
                size = len(body) + len(any_value)
                encoded = tag + (_SMALL[size] if size < 128 else _varint(size)) + body + any_value
            elif kind is int and prefix is not None and 0 <= value <= _INT64_MAX:
                any_value = b"\x18" + (_SMALL[value] if value < 128 else _varint(value))
                size = len(any_value)
                body = prefix + b"\x12" + _SMALL[size]
                size = len(body) + size
                encoded = tag + (_SMALL[size] if size < 128 else _varint(size)) + body + any_value
            else:
                encoded = self._one(key, value)
                if prefix is None:
                    prefixes[key] = _field(b"\x0a", key.encode())
            found[at] = encoded
            count = fresh.get(key, 0)
            if (
                encoded
                and count < _FRESH_LIMIT
                and (kind is str or kind is bool or kind is int or _texts(value) or _float(value))
            ):
                if len(seen) >= _CACHE_LIMIT:
                    seen.clear()
                    fresh.clear()
                seen[key, kind, value] = encoded
                fresh[key] = count + 1
            try:
                at = found.index(None, at + 1)
            except ValueError:
                return

    def _one(self, key: str, value: Any) -> bytes:
        """One attribute's ``KeyValue`` field (empty: left out)."""
        try:
            return _field(self._tag, _key_value(key, value))
        except (ValueError, TypeError):
            return b""


def encode_resource(attributes: Mapping[str, Any]) -> bytes:
    """A ``Resource`` message with `attributes`."""
    return b"".join(_Attributes(b"\x0a").encode(attributes))


def _scope(tracer: LeanTracer) -> bytes:
    """The ``ScopeSpans.scope`` field of `tracer`'s spans."""
    body = _field(b"\x0a", tracer.name.encode())
    if tracer.version:
        body += _field(b"\x12", tracer.version.encode())
    return _field(b"\x0a", body)


def _trace_state(state: TraceState) -> str:
    return ",".join(f"{k}={v}" for k, v in state.items())


class SpanEncoder:
    """Encodes batches of spans of one resource (one per exporter: its memory is its own)."""

    def __init__(self, resource: Mapping[str, Any]) -> None:
        self._resource = _field(b"\x0a", encode_resource(resource))
        self._attributes = _Attributes(b"\x4a")
        self._event_attributes = _Attributes(b"\x1a")
        self._link_attributes = _Attributes(b"\x22")
        self._scopes: dict[int, bytes] = {}
        self._names: dict[str, bytes] = {}

    def encode(self, spans: Sequence[LeanSpan]) -> bytes:
        """An ``ExportTraceServiceRequest`` holding `spans`."""
        by_scope: dict[int, list[bytes]] = {}
        scopes, span_bytes = self._scopes, self._span
        native: Callable[[LeanSpan], bytes | None] | None = (
            None if NATIVE is None else NATIVE.encode_span
        )
        for span in spans:
            key = id(span.scope)
            group = by_scope.get(key)
            if group is None:
                if key not in scopes:
                    scopes[key] = _scope(span.scope)
                group = by_scope[key] = []
            encoded = None if native is None else native(span)
            group.append(span_bytes(span) if encoded is None else encoded)
        body = [self._resource]
        for key, encoded_spans in by_scope.items():
            scope_spans = scopes[key] + b"".join(encoded_spans)
            body.append(_field(b"\x12", scope_spans))
        return _field(b"\x0a", b"".join(body))

    def _name(self, name: str) -> bytes:
        """The ``name`` field (span names repeat: remembered)."""
        names = self._names
        if len(names) >= _CACHE_LIMIT:
            names.clear()
        encoded = names[name] = _field(b"\x2a", name.encode())
        return encoded

    def _span(self, span: LeanSpan) -> bytes:
        # a SpanContext is a tuple: unpacked and indexed without its properties' calls
        trace_id, span_id, _, _, state, _ = span.context
        parent = span.parent
        if state is DEFAULT_TRACE_STATE or not state:  # ids and parent id in one pack
            if parent is None:
                parts = [_IDS(b"\x0a\x10", trace_id >> 64, trace_id & _LOW64, b"\x12\x08", span_id)]
            else:
                parts = [
                    _IDS_PARENT(
                        b"\x0a\x10",
                        trace_id >> 64,
                        trace_id & _LOW64,
                        b"\x12\x08",
                        span_id,
                        b"\x22\x08",
                        parent[1],
                    )
                ]
        else:
            parts = [_IDS(b"\x0a\x10", trace_id >> 64, trace_id & _LOW64, b"\x12\x08", span_id)]
            parts.append(_field(b"\x1a", _trace_state(state).encode()))
            if parent is not None:
                parts.append(_PARENT(b"\x22\x08", parent[1]))
        parts.append(self._names.get(span.name) or self._name(span.name))
        parts.append(_SPAN_KINDS[id(span.kind)])
        start = span.start_time
        parts.append(_TIMES(0x39, start, 0x41, span.end_time or start))
        parts += self._attributes.encode(span.attributes)
        if span.events:
            for name, timestamp, attributes in span.events:
                event = b"\x09" + _FIXED64(timestamp) + _field(b"\x12", name.encode())
                event += b"".join(self._event_attributes.encode(attributes))
                parts.append(_field(b"\x5a", event))
        for link in span.links or ():
            linked = link.context
            body = (
                b"\x0a\x10"
                + linked.trace_id.to_bytes(16, "big")
                + b"\x12\x08"
                + linked.span_id.to_bytes(8, "big")
            )
            body += b"".join(self._link_attributes.encode(link.attributes or {}))
            body += b"\x35" + _FIXED32(_flags(linked))
            parts.append(_field(b"\x6a", body))
        status = span.status
        if status is _NO_STATUS:  # an empty status and the flags, together
            parts.append(_REMOTE_TAIL if parent is not None and parent[2] else _LOCAL_TAIL)
            return _field(b"\x12", b"".join(parts))
        else:
            code = _STATUS_CODES[id(status.status_code)]
            if code or status.description:
                body = _field(b"\x12", status.description.encode()) if status.description else b""
                parts.append(_field(b"\x7a", body + (b"\x18" + _SMALL[code] if code else b"")))
            else:
                parts.append(b"\x7a\x00")
        parts.append(_REMOTE_PARENT if parent is not None and parent[2] else _LOCAL_PARENT)
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
