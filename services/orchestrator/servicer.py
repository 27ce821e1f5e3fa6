"""The gRPC face of the orchestrator: proto -> domain -> engine -> proto, nothing more."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from services.common.errors import FieldViolation, LlmeshError, Reason
from services.common.rpc_errors import abort
from services.orchestrator.aggregate import collect
from services.orchestrator.convert import (
    chat_call_from_proto,
    event_to_proto,
    finish_to_proto,
    usage_to_proto,
)
from services.orchestrator.engine import ChatCall, Orchestrator

log = logging.getLogger("llmesh.orchestrator")

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):  # type: ignore[misc]
    """Implements `llmesh.v1.OrchestratorService` over an `Orchestrator`."""

    def __init__(self, engine: Orchestrator, *, max_request_bytes: int) -> None:
        self._engine = engine
        self._max_request_bytes = max_request_bytes

    def _call(self, request: Any) -> ChatCall:
        size = request.ByteSize()
        if size > self._max_request_bytes:
            raise LlmeshError(
                Reason.INVALID_REQUEST,
                f"request is {size} bytes; the limit is {self._max_request_bytes}",
                violations=(
                    FieldViolation("input", f"larger than {self._max_request_bytes} bytes"),
                ),
            )
        call = chat_call_from_proto(request.input, request.HasField("input"))
        self._engine.targets(call)  # unknown models fail before anything is sent
        return call

    async def StreamChat(
        self, request: orchestrator_pb2.StreamChatRequest, context: Context
    ) -> AsyncIterator[orchestrator_pb2.StreamChatResponse]:
        """Stream events; an error ends the stream with an AIP-193 status."""
        try:
            call = self._call(request)
            async for event in self._engine.stream(call, timeout=context.time_remaining()):
                yield event_to_proto(event)
        except LlmeshError as err:
            await abort(context, err)
        except Exception as exc:  # a bug must not kill the server or leak details
            log.exception("StreamChat failed")
            await abort(
                context, LlmeshError(Reason.INTERNAL, f"internal error: {type(exc).__name__}")
            )

    async def Chat(
        self, request: orchestrator_pb2.ChatRequest, context: Context
    ) -> orchestrator_pb2.ChatResponse:
        """Aggregate the same stream into one reply."""
        try:
            call = self._call(request)
            reply = await collect(self._engine.stream(call, timeout=context.time_remaining()))
        except LlmeshError as err:
            await abort(context, err)
            raise  # pragma: no cover - abort raises
        except Exception as exc:
            log.exception("Chat failed")
            await abort(
                context, LlmeshError(Reason.INTERNAL, f"internal error: {type(exc).__name__}")
            )
            raise  # pragma: no cover
        return orchestrator_pb2.ChatResponse(
            request_id=reply.started.request_id,
            provider=reply.started.provider,
            model=reply.started.model,
            message=chat_pb2.Message(
                role=chat_pb2.ROLE_ASSISTANT,
                content=reply.text,
                tool_calls=[
                    chat_pb2.ToolCall(id=c.id, name=c.name, arguments=c.arguments)
                    for c in reply.tool_calls
                ],
            ),
            finish_reason=finish_to_proto(reply.completed.reason),
            provider_finish_reason=reply.completed.provider_reason,
            usage=usage_to_proto(reply.completed.usage),
        )

    async def ListModels(
        self, request: orchestrator_pb2.ListModelsRequest, context: Context
    ) -> orchestrator_pb2.ListModelsResponse:
        """Every listed model and alias."""
        return orchestrator_pb2.ListModelsResponse(
            models=[
                orchestrator_pb2.ModelInfo(
                    name=e.name,
                    provider=e.target.provider,
                    provider_model=e.target.model,
                    alias_for=e.alias_for,
                )
                for e in self._engine.router.entries()
            ]
        )
