"""The llmesh error model: one exception type carrying a reason from the protos.

Every failure that crosses a service boundary is a `LlmeshError`. Its `reason` names a
value of `llmesh.v1.ErrorReason` (without the `ERROR_REASON_` prefix); `ERROR_TABLE` maps
each reason to its canonical gRPC code and HTTP status, and whether retrying the same call
can help. `contracts/errors.yaml` is the language-neutral copy of this table; a test keeps
the two (and the proto enum) identical. This module imports neither grpc nor HTTP code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmesh.services.core.reasons import Reason as Reason

if TYPE_CHECKING:
    from llmesh.services.core.usage import Usage


@dataclass(frozen=True, slots=True)
class ReasonSpec:
    """How one reason surfaces: gRPC status code name, HTTP status, retryability."""

    grpc_code: str
    """The canonical gRPC status code name, e.g. ``NOT_FOUND``."""
    http_status: int
    """The HTTP status the gateway answers with."""
    retryable: bool
    """True when the same call may succeed if retried later."""


_S = ReasonSpec

ERROR_TABLE: dict[Reason, ReasonSpec] = {
    Reason.INVALID_REQUEST: _S("INVALID_ARGUMENT", 400, False),
    Reason.MODEL_NOT_FOUND: _S("NOT_FOUND", 404, False),
    Reason.PROVIDER_NOT_CONFIGURED: _S("FAILED_PRECONDITION", 400, False),
    Reason.CONTEXT_TOO_LONG: _S("INVALID_ARGUMENT", 400, False),
    Reason.RATE_LIMITED: _S("RESOURCE_EXHAUSTED", 429, True),
    Reason.QUOTA_EXHAUSTED: _S("RESOURCE_EXHAUSTED", 429, False),
    Reason.OVERLOADED: _S("UNAVAILABLE", 503, True),
    Reason.UPSTREAM_UNAVAILABLE: _S("UNAVAILABLE", 502, True),
    Reason.UPSTREAM_TIMEOUT: _S("DEADLINE_EXCEEDED", 504, True),
    Reason.STREAM_INTERRUPTED: _S("UNAVAILABLE", 502, True),
    Reason.MALFORMED_RESPONSE: _S("UNAVAILABLE", 502, True),
    Reason.UPSTREAM_AUTH_FAILED: _S("FAILED_PRECONDITION", 502, False),
    Reason.UPSTREAM_INVALID_REQUEST: _S("INVALID_ARGUMENT", 400, False),
    Reason.CONTENT_FILTERED: _S("INVALID_ARGUMENT", 400, False),
    Reason.DEADLINE_EXCEEDED: _S("DEADLINE_EXCEEDED", 504, False),
    Reason.CANCELLED: _S("CANCELLED", 499, False),
    Reason.CIRCUIT_OPEN: _S("UNAVAILABLE", 503, True),
    Reason.BUDGET_EXCEEDED: _S("RESOURCE_EXHAUSTED", 429, False),
    Reason.RATE_LIMIT_EXCEEDED: _S("RESOURCE_EXHAUSTED", 429, True),
    Reason.QUEUE_FULL: _S("RESOURCE_EXHAUSTED", 429, True),
    Reason.UNAUTHENTICATED: _S("UNAUTHENTICATED", 401, False),
    Reason.PERMISSION_DENIED: _S("PERMISSION_DENIED", 403, False),
    Reason.SHUTTING_DOWN: _S("UNAVAILABLE", 503, True),
    Reason.INTERNAL: _S("INTERNAL", 500, False),
    Reason.SERVICE_UNREACHABLE: _S("UNAVAILABLE", 503, True),
    # the request was fine but the model's reply broke its contract: not the caller's
    # argument (INVALID_ARGUMENT), a state the call could not reach; 422 as for content
    # that is well formed but unprocessable. Retrying the same call may give the same reply.
    Reason.SCHEMA_VALIDATION_FAILED: _S("FAILED_PRECONDITION", 422, False),
    # a bearer token (JWT) refused: UNAUTHENTICATED, each with the reason it was refused
    Reason.TOKEN_MALFORMED: _S("UNAUTHENTICATED", 401, False),
    Reason.TOKEN_EXPIRED: _S("UNAUTHENTICATED", 401, False),
    Reason.TOKEN_NOT_YET_VALID: _S("UNAUTHENTICATED", 401, False),
    Reason.TOKEN_SIGNATURE_INVALID: _S("UNAUTHENTICATED", 401, False),
    Reason.TOKEN_ISSUER_INVALID: _S("UNAUTHENTICATED", 401, False),
    Reason.TOKEN_AUDIENCE_INVALID: _S("UNAUTHENTICATED", 401, False),
    Reason.TOKEN_KEY_UNKNOWN: _S("UNAUTHENTICATED", 401, False),
    Reason.TEMPLATE_NOT_FOUND: _S("NOT_FOUND", 404, False),
    # batch jobs: an unknown batch or file, and an operation its state does not allow
    Reason.BATCH_NOT_FOUND: _S("NOT_FOUND", 404, False),
    Reason.BATCH_STATE_CONFLICT: _S("FAILED_PRECONDITION", 409, False),
}

ERROR_DOMAIN = "llmesh.v1"
"""The `ErrorInfo.domain` of every llmesh error."""

RETRYABLE_KEY = "retryable"
"""`ErrorInfo.metadata` key that, set to ``"false"``, marks one error as not retryable even
though its reason usually is."""


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field of a request, reported as `google.rpc.BadRequest`."""

    field: str
    """The field's path, e.g. ``input.messages[0].role``."""
    description: str
    """What is wrong with it."""


@dataclass(eq=False)
class LlmeshError(Exception):
    """A failure with a reason, a human message and optional structured details."""

    reason: Reason
    message: str
    retry_after: float | None = None
    """Seconds after which a retry may succeed; sent as `google.rpc.RetryInfo`."""
    violations: tuple[FieldViolation, ...] = ()
    """Invalid request fields; sent as `google.rpc.BadRequest`."""
    metadata: dict[str, str] = field(default_factory=dict)
    """Extra context for `ErrorInfo.metadata` (never secrets)."""
    usage: Usage | None = None
    """What the failed call consumed before it failed, if anything (the engine sets it; its
    ``usage.*`` entries in `metadata` are the same counts as the wire shows them)."""

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def spec(self) -> ReasonSpec:
        """The gRPC code and HTTP status of this error's reason."""
        return ERROR_TABLE[self.reason]

    @property
    def retryable(self) -> bool:
        """Whether retrying the same call may help: the reason's default, unless the error
        says otherwise with ``metadata["retryable"] = "false"`` (e.g. a request that can
        never fit a rate limit); the metadata travels in `ErrorInfo`, so clients agree."""
        return self.spec.retryable and self.metadata.get(RETRYABLE_KEY) != "false"

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"


OPENAI_CODE = "openai.code"
"""Error metadata: the OpenAI error ``code`` the gateway answers with (else the reason, lower
case), e.g. ``unsupported_parameter``."""

Violation = Callable[[str, str], None]
"""Told each bad field of a request being checked: its path and what is wrong with it."""


def invalid(field_path: str, description: str) -> LlmeshError:
    """An INVALID_REQUEST error naming one bad field."""
    return LlmeshError(
        Reason.INVALID_REQUEST,
        f"{field_path}: {description}",
        violations=(FieldViolation(field_path, description),),
    )
