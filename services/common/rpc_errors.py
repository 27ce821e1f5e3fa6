"""Map `LlmeshError` to and from gRPC statuses with AIP-193 details.

An error leaves a server as a canonical status code, a message and a
`google.rpc.Status` in the `grpc-status-details-bin` trailer holding exactly one
`ErrorInfo` (reason, domain ``llmesh.v1``), plus `RetryInfo` and `BadRequest`
where they apply. `from_rpc_error` reads such a status back, for clients of the
mesh (the gateway, the CLI, tests).

A status without an llmesh `ErrorInfo` was made by the channel, not by an llmesh server:
UNAVAILABLE then means the service itself could not be reached (SERVICE_UNREACHABLE, naming
its address and how to point the client at it, never a provider failure), and
DEADLINE_EXCEEDED is the call's own deadline (grpc's "Deadline Exceeded" / "Stream removed"
text is replaced by a clear message).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from llmesh.services.common.errors import ERROR_DOMAIN, FieldViolation, LlmeshError, Reason


def to_rpc_status(err: LlmeshError) -> grpc.Status:
    """The gRPC status (code, message, trailing details) for an error.

    The ErrorInfo metadata is the error's, plus its partial usage (``usage.*`` keys) when
    the call consumed tokens before it failed.
    """
    code = grpc.StatusCode[err.spec.grpc_code]
    details: list[Any] = [
        error_details_pb2.ErrorInfo(
            reason=err.reason.value,
            domain=ERROR_DOMAIN,
            metadata={**err.metadata, **usage_metadata(err)},
        )
    ]
    if err.retry_after is not None:
        seconds = max(err.retry_after, 0.0)
        whole = math.floor(seconds)
        delay = duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    subject = err.metadata.get("quota.subject")
    if subject:
        details.append(
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=subject, description=err.metadata.get("quota.description", "")
                    )
                ]
            )
        )
    if err.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in err.violations
                ]
            )
        )
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    status = status_pb2.Status(code=code.value[0], message=err.message, details=packed)
    return rpc_status.to_status(status)


def usage_metadata(err: LlmeshError) -> dict[str, str]:
    """The error's partial usage as ErrorInfo metadata (empty when it has none)."""
    usage = err.usage
    if usage is None:
        return {}
    return {
        "usage.input_tokens": str(usage.input_tokens),
        "usage.output_tokens": str(usage.output_tokens),
        "usage.cache_read_tokens": str(usage.cache_read_tokens),
        "usage.estimated": "true" if usage.estimated else "false",
    }


async def abort(
    context: grpc.aio.ServicerContext[Any, Any],
    err: LlmeshError,
    trailers: Sequence[tuple[str, str]] = (),
) -> None:
    """End the RPC with the error's status (plus extra trailing metadata); never returns."""
    status = to_rpc_status(err)
    await context.abort(status.code, status.details, (*status.trailing_metadata, *trailers))


@dataclass(frozen=True)
class Peer:
    """The llmesh service a client's channel dials, named when the channel itself fails."""

    service: str
    """Which service, e.g. ``orchestrator``."""
    address: str
    """The ``host:port`` the channel dials."""
    how_to_point: str
    """How to point the client at another address, e.g. ``--address``."""


def from_rpc_error(exc: grpc.RpcError, peer: Peer | None = None) -> LlmeshError:
    """Rebuild the `LlmeshError` a server sent; unknown statuses become INTERNAL-like errors.

    `peer` names the service called, for errors the channel raised on its own.
    """
    code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
    message: str = exc.details() or ""  # type: ignore[attr-defined]
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    reason: Reason | None = None
    retry_after: float | None = None
    violations: list[FieldViolation] = []
    metadata: dict[str, str] = {}
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = Reason.__members__.get(info.reason)
            metadata = {**dict(info.metadata), **metadata}
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
        elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            quota = error_details_pb2.QuotaFailure()
            detail.Unpack(quota)
            if quota.violations:
                metadata.setdefault("quota.subject", quota.violations[0].subject)
                metadata.setdefault("quota.description", quota.violations[0].description)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
    if reason is None:
        return _channel_error(code, message, peer)
    return LlmeshError(reason, message, retry_after, tuple(violations), metadata)


def _channel_error(code: grpc.StatusCode, details: str, peer: Peer | None) -> LlmeshError:
    """The error for a status that no llmesh server made (no ErrorInfo in its details)."""
    service = f"llmesh {peer.service}" if peer is not None else "llmesh service"
    metadata = {"grpc_status": code.name, "grpc_details": details}
    if code is grpc.StatusCode.UNAVAILABLE:
        where = ""
        if peer is not None:
            metadata.update(service=peer.service, address=peer.address)
            where = f" at {peer.address}"
        message = f"cannot reach the {service}{where} (the service is down or the address is wrong)"
        if peer is not None:
            message += f"; start it, or point at it with {peer.how_to_point}"
        return LlmeshError(Reason.SERVICE_UNREACHABLE, message, metadata=metadata)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return LlmeshError(
            Reason.DEADLINE_EXCEEDED,
            f"the call's deadline passed before the {service} finished its reply",
            metadata=metadata,
        )
    reason = _REASON_FOR_BARE_CODE.get(code, Reason.INTERNAL)
    return LlmeshError(reason, details, metadata=metadata)


_REASON_FOR_BARE_CODE: dict[grpc.StatusCode, Reason] = {
    grpc.StatusCode.CANCELLED: Reason.CANCELLED,
    grpc.StatusCode.INVALID_ARGUMENT: Reason.INVALID_REQUEST,
    grpc.StatusCode.NOT_FOUND: Reason.MODEL_NOT_FOUND,
    grpc.StatusCode.UNAUTHENTICATED: Reason.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: Reason.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Reason.RATE_LIMIT_EXCEEDED,
}
"""Reasons for other statuses that carry no ErrorInfo (UNAVAILABLE and DEADLINE_EXCEEDED
are handled above)."""
