"""Why a call failed: the reasons of the error model, as a domain enum.

`llmesh.services.common.errors` maps each to its gRPC code and HTTP status (`ERROR_TABLE`) and
carries it in `LlmeshError`; here it is plain data, so the domain can name a reason (a
failed attempt's, a mid-stream switch's) without depending on the error model.
"""

from __future__ import annotations

import enum

__all__ = ["Reason"]


class Reason(enum.Enum):
    """Why a call failed; the values are the proto enum names without their prefix."""

    INVALID_REQUEST = "INVALID_REQUEST"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"
    CONTEXT_TOO_LONG = "CONTEXT_TOO_LONG"
    RATE_LIMITED = "RATE_LIMITED"
    QUOTA_EXHAUSTED = "QUOTA_EXHAUSTED"
    OVERLOADED = "OVERLOADED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    UPSTREAM_TIMEOUT = "UPSTREAM_TIMEOUT"
    STREAM_INTERRUPTED = "STREAM_INTERRUPTED"
    MALFORMED_RESPONSE = "MALFORMED_RESPONSE"
    UPSTREAM_AUTH_FAILED = "UPSTREAM_AUTH_FAILED"
    UPSTREAM_INVALID_REQUEST = "UPSTREAM_INVALID_REQUEST"
    CONTENT_FILTERED = "CONTENT_FILTERED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    CANCELLED = "CANCELLED"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    QUEUE_FULL = "QUEUE_FULL"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    INTERNAL = "INTERNAL"
    SERVICE_UNREACHABLE = "SERVICE_UNREACHABLE"
    SCHEMA_VALIDATION_FAILED = "SCHEMA_VALIDATION_FAILED"
