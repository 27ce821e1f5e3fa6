"""The gateway's error bodies: llmesh's native JSON shape and OpenAI's shape.

Every error the gateway answers with is a `LlmeshError`, whether it came back from a gRPC
call (through `from_rpc_error`) or was found at the HTTP edge (bad JSON, unknown route). Its
HTTP status is `ERROR_TABLE[reason].http_status`, except where the edge knows better (413 for
an oversized body, 404/405 for routing).

Native body::

    {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "reason": "RATE_LIMITED",
               "message": "...", "retryAfter": 1.5,
               "fieldViolations": [{"field": "...", "description": "..."}],
               "metadata": {...}}}

``retryAfter`` and ``fieldViolations`` appear only when set. OpenAI body::

    {"error": {"message": "...", "type": "rate_limit_error", "param": null,
               "code": "rate_limited"}}

Both come with ``Retry-After`` (whole seconds, rounded up) when a retry delay is known, and
``x-should-retry`` from the table, which the official SDKs obey (``false`` also when the
error itself says a retry cannot help, e.g. a request that can never fit a rate limit),
and ``x-request-id`` when the orchestrator numbered the call (with tracing on, every
response also carries its ``traceparent``).
"""

from __future__ import annotations

import math
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from llmesh.gateway.responses import OrjsonResponse
from llmesh.services.common.errors import OPENAI_CODE as _OPENAI_CODE
from llmesh.services.common.errors import LlmeshError, Reason


class BodyTooLarge(LlmeshError):
    """A request body over the configured limit; answered with HTTP 413."""


_ROUTING_STATUS = {404: "NOT_FOUND", 405: "UNIMPLEMENTED", 413: "INVALID_ARGUMENT"}
"""gRPC code names for the statuses the HTTP edge produces on its own."""

_OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def http_status(err: LlmeshError) -> int:
    """The HTTP status an error is answered with."""
    if isinstance(err, BodyTooLarge):
        return 413
    return err.spec.http_status


def error_headers(err: LlmeshError) -> dict[str, str]:
    """``Retry-After`` (when known), ``x-should-retry`` and, for a call the orchestrator
    numbered, its ``x-request-id`` for an error response."""
    headers = {"x-should-retry": "true" if err.retryable else "false"}
    request_id = err.metadata.get("request_id")
    if request_id:
        headers["x-request-id"] = str(request_id)
    if err.retry_after is not None:
        headers["retry-after"] = str(max(0, math.ceil(err.retry_after)))
    return headers


def error_body(err: LlmeshError, status: int | None = None) -> dict[str, Any]:
    """The native JSON error body."""
    code = http_status(err) if status is None else status
    grpc_status = err.spec.grpc_code
    if code != err.spec.http_status:
        grpc_status = _ROUTING_STATUS.get(code, grpc_status)
    body: dict[str, Any] = {
        "code": code,
        "status": grpc_status,
        "reason": err.reason.value,
        "message": err.message,
    }
    if err.retry_after is not None:
        body["retryAfter"] = err.retry_after
    if err.violations:
        body["fieldViolations"] = [
            {"field": v.field, "description": v.description} for v in err.violations
        ]
    body["metadata"] = dict(err.metadata)
    return {"error": body}


def error_response(err: LlmeshError, status: int | None = None) -> Response:
    """A native JSON error response."""
    code = http_status(err) if status is None else status
    return OrjsonResponse(error_body(err, code), status_code=code, headers=error_headers(err))


OPENAI_CODE = _OPENAI_CODE
"""Error metadata: the OpenAI error ``code`` to answer with (else the reason, lower case)."""


def openai_error_type(status: int) -> str:
    """OpenAI's error ``type`` for an HTTP status."""
    if status >= 500:
        return "api_error"
    return _OPENAI_TYPES.get(status, "invalid_request_error")


def openai_error_body(err: LlmeshError, status: int | None = None) -> dict[str, Any]:
    """The OpenAI-shaped error body."""
    code = http_status(err) if status is None else status
    return {
        "error": {
            "message": err.message,
            "type": openai_error_type(code),
            "param": err.violations[0].field if err.violations else None,
            "code": err.metadata.get(OPENAI_CODE) or err.reason.value.lower(),
        }
    }


def openai_error_response(err: LlmeshError, status: int | None = None) -> Response:
    """An OpenAI-shaped error response."""
    code = http_status(err) if status is None else status
    return OrjsonResponse(
        openai_error_body(err, code), status_code=code, headers=error_headers(err)
    )


def _respond(request: Request, err: LlmeshError, status: int | None = None) -> Response:
    if request.url.path.startswith("/v1/messages"):
        from llmesh.gateway.anthropic.errors import error_response as anthropic_error

        return anthropic_error(err, status)
    if request.url.path.startswith("/v1/"):
        return openai_error_response(err, status)
    return error_response(err, status)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Routing errors (404, 405, ...) as JSON in the shape the path's API uses."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    response = _respond(request, LlmeshError(Reason.INVALID_REQUEST, message), exc.status_code)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """Anything unforeseen: a 500 in the right shape, without internals."""
    err = LlmeshError(Reason.INTERNAL, f"internal error: {type(exc).__name__}")
    return _respond(request, err)
