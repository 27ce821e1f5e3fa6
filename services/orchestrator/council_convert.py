"""Protobuf <-> domain mapping for `StreamCouncil`, with the council's request validation.

Every bad field of the request (the shared input's and the members') is reported in one
INVALID_REQUEST error, one `google.rpc.BadRequest` field violation each.
"""

from __future__ import annotations

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.common.media_settings import PartLimits
from llmesh.services.core.call import ChatCall
from llmesh.services.orchestrator.convert import chat_call_from_proto, check_size
from llmesh.services.orchestrator.council import (
    BranchFailed,
    BranchItem,
    Council,
    Judge,
    Member,
    council_violations,
    default_branch_name,
)
from llmesh.services.orchestrator.replies_convert import event_to_proto, usage_to_proto
from llmesh.v1 import chat_pb2, errors_pb2, orchestrator_pb2

SHARED_MODEL = "council"
"""The placeholder model of the shared call: `ChatInput.model` is ignored in a council."""


def council_from_proto(
    request: orchestrator_pb2.StreamCouncilRequest,
    *,
    max_request_bytes: int,
    limits: PartLimits | None = None,
) -> Council:
    """Validate a `StreamCouncilRequest` and map it to a `Council`; raises INVALID_REQUEST."""
    check_size(request, max_request_bytes)
    bad: list[FieldViolation] = []
    call: ChatCall | None = None
    shared = chat_pb2.ChatInput()
    shared.CopyFrom(request.input)
    shared.model = SHARED_MODEL
    try:
        call = chat_call_from_proto(
            shared, request.HasField("input"), limits=limits or PartLimits()
        )
    except LlmeshError as err:
        if err.reason is not Reason.INVALID_REQUEST:
            raise
        bad.extend(err.violations)
    members = tuple(
        Member(m.name or default_branch_name(i), m.model.strip(), m.persona)
        for i, m in enumerate(request.members)
    )
    judge = (
        Judge(request.judge.model.strip(), request.judge.instructions)
        if request.HasField("judge")
        else None
    )
    bad.extend(council_violations(members, judge))
    if bad or call is None:
        summary = "; ".join(f"{v.field}: {v.description}" for v in bad)
        raise LlmeshError(
            Reason.INVALID_REQUEST, f"invalid request: {summary}", violations=tuple(bad)
        )
    return Council(call, members, judge, request.fail_fast)


def council_item_to_proto(item: BranchItem) -> orchestrator_pb2.StreamCouncilResponse:
    """One council item: a branch's stream event, or its `BranchError`."""
    if isinstance(item.event, BranchFailed):
        failed = item.event
        error = orchestrator_pb2.BranchError(
            reason=errors_pb2.ErrorReason.Value("ERROR_REASON_" + failed.reason.value),
            message=failed.message,
        )
        if failed.usage is not None:
            error.usage.CopyFrom(usage_to_proto(failed.usage))
        return orchestrator_pb2.StreamCouncilResponse(branch=item.branch, error=error)
    return orchestrator_pb2.StreamCouncilResponse(
        branch=item.branch, event=event_to_proto(item.event)
    )
