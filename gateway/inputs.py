"""Reading requests: bounded JSON bodies, protobuf JSON, and per-call gRPC options."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry import trace
from starlette.requests import ClientDisconnect, Request

from llmesh.gateway.errors import BodyTooLarge
from llmesh.services.auth.authenticator import TENANT_HEADER
from llmesh.services.common.call_metadata import (
    PRIORITY_KEY,
    RETRY_COUNT_KEY,
    parse_requested_priority,
    parse_retry_count,
)
from llmesh.services.common.errors import LlmeshError, Reason, invalid

M = TypeVar("M", bound=Message)
T = TypeVar("T")

TIMEOUT_HEADER = "x-llmesh-timeout"
"""Request header: the call's deadline in seconds (a float), sent on as the gRPC timeout."""

FORWARDED_HEADERS = ("authorization", TENANT_HEADER)
"""Request headers passed on to the upstream services as gRPC metadata: the key, and the
tenant a call acts for (without API keys it names the tenant the ledger records, the same
one the gateway stores responses under)."""

RETRY_COUNT_HEADERS = ("x-llmesh-retry-count", "x-stainless-retry-count")
"""Headers carrying the client's retry number of a call (the official openai and anthropic
SDKs send ``x-stainless-retry-count``), passed on as ``llmesh-retry-count`` metadata."""

TRACEPARENT_HEADER = "traceparent"
"""The caller's W3C trace context. With tracing on, the gateway's own spans carry it on;
with tracing off it is passed on as it came, so the ledger still records the caller's trace
id with the call."""

PRIORITY_HEADER = "x-llmesh-priority"
"""Request header: the call's priority tier (``batch`` ... ``critical``), passed on as
``llmesh-priority`` metadata; the response header of the same name tells the tier it ran at."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise LlmeshError(Reason.CANCELLED, "the client disconnected") from None
    return b"".join(chunks)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(Reason.INVALID_REQUEST, f"the request body is larger than {limit} bytes")


def decode_json(raw: bytes | str) -> Any:
    """Parse JSON text, turning malformed input into INVALID_REQUEST."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LlmeshError(Reason.INVALID_REQUEST, f"the body is not valid JSON: {exc}") from None


MAX_JSON_DEPTH = 32
"""The deepest nesting of objects and arrays a request body may have.

A JSON Schema in ``tools[].parameters`` becomes a `google.protobuf.Struct`, three message
levels per JSON level, and protobuf refuses to parse messages nested deeper than 100: a
deeper body would pass here and fail upstream as an internal error.
"""


def check_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Reject JSON nested deeper than `limit` objects/arrays (INVALID_REQUEST)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    raise invalid("body", f"nested deeper than {limit} levels")
                stack.append((child, depth + 1))


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object of bounded nesting."""
    value = decode_json(await read_body(request, limit))
    if not isinstance(value, dict):
        raise invalid("body", "must be a JSON object")
    check_depth(value)
    return value


def named(table: Mapping[str, T], value: Any) -> T | None:
    """The entry of `table` a JSON value names, or None: a value that is not a string names
    nothing (and a list or object could not even be looked up: it is unhashable)."""
    return table.get(value) if isinstance(value, str) else None


def parse_message(value: Any, message: M, field_path: str = "body") -> M:
    """Fill `message` from protobuf-JSON `value` (camelCase or snake_case names)."""
    if not isinstance(value, dict):
        raise invalid(field_path, "must be a JSON object")
    try:
        json_format.ParseDict(value, message)
    except (json_format.ParseError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise invalid(field_path, str(exc)) from None
    return message


async def read_message(request: Request, message: M, limit: int) -> M:
    """Read a protobuf-JSON request body into `message`."""
    return parse_message(await read_json_object(request, limit), message)


def message_json(message: Message) -> bytes:
    """The canonical protobuf JSON of `message` (camelCase names), as bytes."""
    return orjson.dumps(json_format.MessageToDict(message))


@dataclass(frozen=True, slots=True)
class CallOptions:
    """The per-call gRPC arguments an HTTP request implies."""

    timeout: float | None
    metadata: tuple[tuple[str, str], ...]


def call_options(headers: Mapping[str, str], default_timeout: float | None) -> CallOptions:
    """The deadline (from ``x-llmesh-timeout``) and forwarded metadata of a request."""
    timeout = default_timeout
    raw = headers.get(TIMEOUT_HEADER)
    if raw is not None:
        try:
            timeout = float(raw)
        except ValueError:
            timeout = math.nan
        if not (timeout > 0 and math.isfinite(timeout)):
            raise invalid(TIMEOUT_HEADER, "must be a positive number of seconds")
    metadata = []
    for name in FORWARDED_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        if not (value.isascii() and value.isprintable()):
            raise invalid(name, "must be printable ASCII")
        metadata.append((name, value))
    for header in RETRY_COUNT_HEADERS:  # the SDKs' retry number, so llmesh counts it once
        raw = headers.get(header)
        if raw is not None:
            metadata.append((RETRY_COUNT_KEY, str(parse_retry_count(raw, header))))
            break
    raw = headers.get(PRIORITY_HEADER)
    if raw is not None:
        metadata.append((PRIORITY_KEY, parse_requested_priority(raw, PRIORITY_HEADER).label))
    raw = headers.get(TRACEPARENT_HEADER)
    if raw and raw.isascii() and raw.isprintable() and not _traced():
        metadata.append((TRACEPARENT_HEADER, raw))  # a malformed one is ignored downstream
    return CallOptions(timeout, tuple(metadata))


def _traced() -> bool:
    """True inside a span (tracing on): the gRPC client span then sends the context on."""
    return bool(trace.get_current_span().get_span_context().is_valid)
