"""Domain -> protobuf mapping for the orchestrator's answers: replies, stream events, usage,
error reasons and the attempt trail (as messages and as trailing metadata)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta

import orjson

from llmesh.services.common.errors import Reason
from llmesh.services.common.order_proto import order_to_proto
from llmesh.services.core.chat import (
    FinishReason,
    ThinkingBlock,
)
from llmesh.services.core.events import (
    CallEvent,
    Embeddings,
    ReasoningDelta,
    Started,
    Switched,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from llmesh.services.core.policy import MidStreamPolicy
from llmesh.services.core.trail import AttemptRecord, Outcome, Trail, attempt_json
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.aggregate import Reply
from llmesh.services.orchestrator.sampling import logprobs_to_proto
from llmesh.v1 import chat_pb2, errors_pb2, orchestrator_pb2

__all__ = [
    "attempts_to_json",
    "attempts_to_proto",
    "chat_reply_to_proto",
    "event_to_proto",
    "finish_to_proto",
    "reason_to_proto",
    "thinking_to_proto",
    "trail_to_metadata",
    "usage_to_proto",
]

_FINISH_TO_PB = {
    FinishReason.STOP: chat_pb2.FINISH_REASON_STOP,
    FinishReason.LENGTH: chat_pb2.FINISH_REASON_LENGTH,
    FinishReason.TOOL_CALLS: chat_pb2.FINISH_REASON_TOOL_CALLS,
    FinishReason.CONTENT_FILTER: chat_pb2.FINISH_REASON_CONTENT_FILTER,
    FinishReason.UNSPECIFIED: chat_pb2.FINISH_REASON_UNSPECIFIED,
}


def usage_to_proto(u: Usage) -> chat_pb2.Usage:
    """The protobuf form of a usage record."""
    return chat_pb2.Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
        reasoning_tokens=u.reasoning_tokens,
        estimated=u.estimated,
    )


def finish_to_proto(reason: FinishReason) -> chat_pb2.FinishReason:
    """The protobuf finish reason."""
    return _FINISH_TO_PB[reason]


def thinking_to_proto(block: ThinkingBlock) -> chat_pb2.ThinkingBlock:
    """The protobuf form of a thinking block."""
    return chat_pb2.ThinkingBlock(
        thinking=block.thinking, signature=block.signature, redacted_data=block.redacted_data
    )


def chat_reply_to_proto(reply: Reply) -> orchestrator_pb2.ChatResponse:
    """The aggregated reply as one `ChatResponse`."""
    completed = reply.completed
    out = orchestrator_pb2.ChatResponse(
        request_id=reply.started.request_id,
        provider=reply.started.provider,
        model=reply.started.model,
        finish_reason=_FINISH_TO_PB[completed.reason],
        provider_finish_reason=completed.provider_reason,
        stop_sequence=completed.stop_sequence,
        usage=usage_to_proto(completed.usage),
        cache_hit=completed.cache_hit,
    )
    message = out.message  # filled in place: no message built apart and copied in
    message.role = chat_pb2.ROLE_ASSISTANT
    message.content = reply.text
    # the repeated fields only when there is something in them (most replies are text)
    if reply.tool_calls:
        message.tool_calls.extend(
            chat_pb2.ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in reply.tool_calls
        )
    if reply.thinking:
        message.thinking.extend(thinking_to_proto(b) for b in reply.thinking)
    if reply.order:
        message.block_order.extend(order_to_proto(reply.order))
    if reply.logprobs:
        out.logprobs.extend(logprobs_to_proto(reply.logprobs))
    return out


def event_to_proto(event: CallEvent) -> orchestrator_pb2.StreamChatResponse:
    """One stream event as a `StreamChatResponse`."""
    R = orchestrator_pb2.StreamChatResponse
    if isinstance(event, TextDelta):  # nearly every event: set in place, no second message
        out = R()
        out.text_delta.text = event.text
        if event.logprobs:
            out.text_delta.logprobs.extend(logprobs_to_proto(event.logprobs))
        return out
    if isinstance(event, ToolCallDelta):
        return R(
            tool_call_delta=orchestrator_pb2.ToolCallDelta(
                index=event.index,
                id=event.id,
                name=event.name,
                arguments_delta=event.arguments_delta,
            )
        )
    if isinstance(event, ReasoningDelta):
        return R(
            reasoning_delta=orchestrator_pb2.ReasoningDelta(
                text=event.text,
                index=event.index,
                signature=event.signature,
                redacted_data=event.redacted_data,
            )
        )
    if isinstance(event, UsageUpdate):
        return R(usage=usage_to_proto(event.usage))
    if isinstance(event, Started):
        return R(
            start=orchestrator_pb2.StartEvent(
                request_id=event.request_id,
                provider=event.provider,
                model=event.model,
                cache_hit=event.cache_hit,
            )
        )
    if isinstance(event, Switched):
        return R(
            switch=orchestrator_pb2.SwitchEvent(
                from_provider=event.source.provider,
                from_model=event.source.model,
                to_provider=event.target.provider,
                to_model=event.target.model,
                reason=reason_to_proto(event.reason),
                policy=_POLICY_TO_PB[event.policy],
            )
        )
    if isinstance(event, Embeddings):  # an embeddings call's result is never streamed
        raise TypeError("an Embeddings event has no place in a chat stream")
    finish = orchestrator_pb2.FinishEvent(
        reason=_FINISH_TO_PB[event.reason],
        provider_reason=event.provider_reason,
        usage=usage_to_proto(event.usage),
        attempts=attempts_to_proto(event.attempts),
        cost_usd=event.cost_usd,
        cache_hit=event.cache_hit,
        stop_sequence=event.stop_sequence,
    )
    finish.overhead.FromTimedelta(timedelta(seconds=event.overhead))
    return R(finish=finish)


_POLICY_TO_PB = {
    MidStreamPolicy.NEVER: chat_pb2.MID_STREAM_POLICY_NEVER,
    MidStreamPolicy.RESTART: chat_pb2.MID_STREAM_POLICY_RESTART,
    MidStreamPolicy.CONTINUE: chat_pb2.MID_STREAM_POLICY_CONTINUE,
}
_OUTCOME_TO_PB = {
    Outcome.SUCCEEDED: orchestrator_pb2.ATTEMPT_OUTCOME_SUCCEEDED,
    Outcome.FAILED: orchestrator_pb2.ATTEMPT_OUTCOME_FAILED,
    Outcome.CANCELLED: orchestrator_pb2.ATTEMPT_OUTCOME_CANCELLED,
    Outcome.SKIPPED: orchestrator_pb2.ATTEMPT_OUTCOME_SKIPPED,
    Outcome.RUNNING: orchestrator_pb2.ATTEMPT_OUTCOME_UNSPECIFIED,
}


def reason_to_proto(reason: Reason) -> errors_pb2.ErrorReason:
    """The `llmesh.v1.ErrorReason` value of a reason."""
    value: errors_pb2.ErrorReason = errors_pb2.ErrorReason.Value("ERROR_REASON_" + reason.value)
    return value


def attempts_to_proto(records: Sequence[AttemptRecord]) -> list[orchestrator_pb2.Attempt]:
    """The attempt trail as protobuf messages."""
    out = []
    for r in records:
        a = orchestrator_pb2.Attempt(
            provider=r.target.provider,
            model=r.target.model,
            outcome=_OUTCOME_TO_PB[r.outcome],
            hedged=r.hedged,
            retry=r.retry,
            pick=r.pick,
            detail=r.detail,
        )
        if r.reason is not None:
            a.error_reason = reason_to_proto(r.reason)
        a.latency.FromTimedelta(timedelta(seconds=r.latency))
        if r.ttft is not None:
            a.time_to_first_token.FromTimedelta(timedelta(seconds=r.ttft))
        out.append(a)
    return out


def attempts_to_json(records: Sequence[AttemptRecord]) -> str:
    """The attempt trail as compact JSON, for gRPC trailing metadata and HTTP headers."""
    return orjson.dumps([attempt_json(r, brief=True) for r in records]).decode()


def trail_to_metadata(trail: Trail) -> list[tuple[str, str]]:
    """The attempt trail and llmesh's overhead so far as gRPC trailing metadata, with the
    call's priority tier and, when it waited for a target slot, its queue wait."""
    overhead = trail.overhead(time.monotonic())
    out = [
        ("llmesh-attempts", attempts_to_json(trail.attempts)),
        ("llmesh-overhead-ms", f"{overhead * 1000:.3f}"),
    ]
    if trail.priority:
        out.append(("llmesh-priority", trail.priority))
    if trail.queue_wait > 0:
        out.append(("llmesh-queue-ms", f"{trail.queue_wait * 1000:.3f}"))
    if trail.notes:
        out.append(("llmesh-steps", orjson.dumps(trail.notes).decode()))
    if trail.template:
        out.append(("llmesh-template", "{}@{}".format(*trail.template)))
    return out
