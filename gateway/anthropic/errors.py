"""Errors in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``.

The HTTP status is llmesh's (`llmesh.gateway.errors.http_status`), except that an
overloaded upstream is Anthropic's 529; the error ``type`` follows the status as Anthropic's
does, so the official SDK raises the matching exception class (400 `BadRequestError`, 401
`AuthenticationError`, 429 `RateLimitError`, 529 `OverloadedError`, ...). An error after a
stream started is an ``event: error`` with the same body.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from llmesh.gateway.errors import error_headers, http_status
from llmesh.gateway.responses import OrjsonResponse, sse_event
from llmesh.services.common.errors import LlmeshError, Reason

__all__ = ["error_body", "error_event", "error_response", "error_type", "status_of"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}

OVERLOADED = 529
"""Anthropic's status for an overloaded service."""


def status_of(err: LlmeshError, status: int | None = None) -> int:
    """The HTTP status an error is answered with on the Messages API."""
    if status is not None:
        return status
    if err.reason is Reason.OVERLOADED:
        return OVERLOADED
    return http_status(err)


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status."""
    if status in _TYPES:
        return _TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(err: LlmeshError, status: int | None = None) -> dict[str, Any]:
    """The Anthropic-shaped error body; a field violation is named in the message."""
    message = err.message
    if err.violations and err.violations[0].field not in message:
        message = f"{err.violations[0].field}: {message}"
    return {
        "type": "error",
        "error": {"type": error_type(status_of(err, status)), "message": message},
    }


def error_response(err: LlmeshError, status: int | None = None) -> Response:
    """An Anthropic-shaped error response."""
    code = status_of(err, status)
    return OrjsonResponse(error_body(err, code), status_code=code, headers=error_headers(err))


def error_event(err: LlmeshError) -> bytes:
    """A mid-stream error: ``event: error`` with the error body."""
    return sse_event("error", orjson.dumps(error_body(err)))
