"""Fake upstream services for testing the gateway without the real orchestrator.

`FakeOrchestrator` plays a script per model name (see `SCRIPTS`) and records what reached it:
the `ChatInput`s, the metadata, the deadlines, and whether a call was cancelled. `FakeProcessor`
counts words. `start_fake_mesh` runs both on one real `grpc.aio` server on
``127.0.0.1:<ephemeral>``, with the health service (from `llmesh.services.common.grpc_server`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from llmesh.services.common.errors import LlmeshError, Reason, invalid
from llmesh.services.common.grpc_server import RunningServer, ServiceBinding, start_server
from llmesh.services.common.rpc_errors import abort
from llmesh.v1 import (
    chat_pb2,
    errors_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    processor_pb2,
    processor_pb2_grpc,
)

Context = grpc.aio.ServicerContext[Any, Any]
Step = orchestrator_pb2.StreamChatResponse | LlmeshError | float
"""A script step: an event to send, an error to end the call with, or seconds to sleep."""

ORCHESTRATOR = "llmesh.v1.OrchestratorService"
PROCESSOR = "llmesh.v1.ProcessorService"

FINAL_USAGE = chat_pb2.Usage(
    input_tokens=10,
    output_tokens=5,
    cache_read_tokens=3,
    cache_write_tokens=2,
    reasoning_tokens=1,
)


def start_event(model: str) -> orchestrator_pb2.StreamChatResponse:
    """The start event of the fake call serving `model`."""
    return orchestrator_pb2.StreamChatResponse(
        start=orchestrator_pb2.StartEvent(
            request_id=f"req-{model.split('/')[-1]}", provider="fake", model=model
        )
    )


def text(value: str) -> orchestrator_pb2.StreamChatResponse:
    """A text delta event."""
    return orchestrator_pb2.StreamChatResponse(text_delta=orchestrator_pb2.TextDelta(text=value))


def tool(
    index: int, args: str, call_id: str = "", name: str = ""
) -> orchestrator_pb2.StreamChatResponse:
    """A tool call delta event."""
    return orchestrator_pb2.StreamChatResponse(
        tool_call_delta=orchestrator_pb2.ToolCallDelta(
            index=index, id=call_id, name=name, arguments_delta=args
        )
    )


def switch(policy: int) -> orchestrator_pb2.StreamChatResponse:
    return orchestrator_pb2.StreamChatResponse(
        switch=orchestrator_pb2.SwitchEvent(
            from_provider="fake",
            from_model="first",
            to_provider="fake",
            to_model="second",
            reason=errors_pb2.ERROR_REASON_OVERLOADED,
            policy=policy,  # type: ignore[arg-type]
        )
    )


def finish(reason: int, usage: chat_pb2.Usage = FINAL_USAGE) -> orchestrator_pb2.StreamChatResponse:
    """A finish event."""
    return orchestrator_pb2.StreamChatResponse(
        finish=orchestrator_pb2.FinishEvent(reason=reason, provider_reason="done", usage=usage)
    )


SCRIPTS: dict[str, Sequence[Step]] = {
    "fake/text": [
        start_event("fake/text"),
        text("Hello"),
        text(", world"),
        orchestrator_pb2.StreamChatResponse(usage=chat_pb2.Usage(input_tokens=10)),
        finish(chat_pb2.FINISH_REASON_STOP),
    ],
    "fake/length": [
        start_event("fake/length"),
        text("Truncated"),
        finish(chat_pb2.FINISH_REASON_LENGTH),
    ],
    "fake/tools": [
        start_event("fake/tools"),
        tool(0, "", "call_0", "get_weather"),
        tool(0, '{"city":'),
        tool(0, ' "Paris"}'),
        tool(1, "", "call_1", "get_time"),
        tool(1, '{"tz": "CET"}'),
        finish(chat_pb2.FINISH_REASON_TOOL_CALLS),
    ],
    "fake/rate-limited": [LlmeshError(Reason.RATE_LIMITED, "slow down", retry_after=1.5)],
    "fake/never-fits": [
        LlmeshError(
            Reason.RATE_LIMIT_EXCEEDED,
            "a request of 9000 tokens can never fit",
            metadata={"retryable": "false"},
        )
    ],
    "fake/invalid": [invalid("input.messages[0].content", "must not be empty")],
    "fake/cut": [
        start_event("fake/cut"),
        text("partial"),
        LlmeshError(Reason.STREAM_INTERRUPTED, "the upstream connection dropped"),
    ],
    "fake/no-finish": [start_event("fake/no-finish"), text("partial")],
    # the first target failed mid-stream and another took over: restarting, or continuing
    "fake/restart": [
        start_event("fake/restart"),
        text("half a rep"),
        switch(chat_pb2.MID_STREAM_POLICY_RESTART),
        text("The whole reply."),
        finish(chat_pb2.FINISH_REASON_STOP),
    ],
    "fake/continue": [
        start_event("fake/continue"),
        text("half a rep"),
        switch(chat_pb2.MID_STREAM_POLICY_CONTINUE),
        text("ly, continued."),
        finish(chat_pb2.FINISH_REASON_STOP),
    ],
    "fake/slow": [
        start_event("fake/slow"),
        text("tick"),
        60.0,
        finish(chat_pb2.FINISH_REASON_STOP),
    ],
    "fake/slow-start": [60.0, start_event("fake/slow-start"), finish(chat_pb2.FINISH_REASON_STOP)],
    # the stream's end (OK status) trails its finish event, as a busy server's may
    "fake/linger": [start_event("fake/linger"), finish(chat_pb2.FINISH_REASON_STOP), 0.3],
}


@dataclass
class Seen:
    """One call as the fake upstream received it."""

    input: chat_pb2.ChatInput
    metadata: dict[str, str]
    time_remaining: float | None


class FakeOrchestrator(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    """Plays `SCRIPTS`; unknown models fail with MODEL_NOT_FOUND."""

    def __init__(self) -> None:
        self.calls: list[Seen] = []
        self.called = asyncio.Event()
        """Set when the first call arrives."""
        self.cancelled = asyncio.Event()
        """Set when any call is cancelled by its client."""
        self.completed = 0

    def _script(self, chat: chat_pb2.ChatInput, context: Context) -> Sequence[Step]:
        self.calls.append(
            Seen(
                chat,
                {m.key: m.value for m in context.invocation_metadata() or ()},
                context.time_remaining(),
            )
        )
        self.called.set()
        script = SCRIPTS.get(chat.model)
        if script is None:
            return [LlmeshError(Reason.MODEL_NOT_FOUND, f"no model {chat.model!r}")]
        return script

    async def StreamChat(
        self, request: orchestrator_pb2.StreamChatRequest, context: Context
    ) -> AsyncIterator[orchestrator_pb2.StreamChatResponse]:
        try:
            for step in self._script(request.input, context):
                if isinstance(step, LlmeshError):
                    await abort(context, step)
                elif isinstance(step, float):
                    await asyncio.sleep(step)
                else:
                    yield step
            self.completed += 1
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def Chat(
        self, request: orchestrator_pb2.ChatRequest, context: Context
    ) -> orchestrator_pb2.ChatResponse:
        reply = orchestrator_pb2.ChatResponse(
            message=chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT)
        )
        calls: dict[int, chat_pb2.ToolCall] = {}
        try:
            for step in self._script(request.input, context):
                if isinstance(step, LlmeshError):
                    await abort(context, step)
                elif isinstance(step, float):
                    await asyncio.sleep(step)
                elif step.HasField("start"):
                    reply.request_id = step.start.request_id
                    reply.provider = step.start.provider
                    reply.model = step.start.model
                elif step.HasField("text_delta"):
                    reply.message.content += step.text_delta.text
                elif step.HasField("tool_call_delta"):
                    d = step.tool_call_delta
                    call = calls.setdefault(d.index, chat_pb2.ToolCall(id=d.id, name=d.name))
                    call.arguments += d.arguments_delta
                elif step.HasField("finish"):
                    reply.finish_reason = step.finish.reason
                    reply.provider_finish_reason = step.finish.provider_reason
                    reply.usage.CopyFrom(step.finish.usage)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        reply.message.tool_calls.extend(calls[i] for i in sorted(calls))
        self.completed += 1
        return reply

    async def CountInputTokens(
        self, request: orchestrator_pb2.CountInputTokensRequest, context: Context
    ) -> orchestrator_pb2.CountInputTokensResponse:
        """``fake/count-*`` models count 42 (``exact``), fail (``down``: OVERLOADED,
        ``refused``: UPSTREAM_INVALID_REQUEST); the others have no exact count (as
        without this method, where the gateway asks the processor)."""
        model = request.input.model
        if model == "fake/count-exact":
            return orchestrator_pb2.CountInputTokensResponse(
                input_tokens=42, provider="fake", model="count-exact"
            )
        if model == "fake/count-down":
            await abort(context, LlmeshError(Reason.OVERLOADED, "upstream overloaded"))
        if model == "fake/count-refused":
            await abort(context, LlmeshError(Reason.UPSTREAM_INVALID_REQUEST, "bad signature"))
        return orchestrator_pb2.CountInputTokensResponse()

    async def WatchMesh(
        self, request: orchestrator_pb2.WatchMeshRequest, context: Context
    ) -> AsyncIterator[orchestrator_pb2.WatchMeshResponse]:
        """A snapshot every 50 ms until the client goes away; tenant ``denied`` is refused."""
        self.calls.append(
            Seen(
                chat_pb2.ChatInput(),
                {m.key: m.value for m in context.invocation_metadata() or ()},
                context.time_remaining(),
            )
        )
        if request.tenant == "denied":
            await abort(context, LlmeshError(Reason.PERMISSION_DENIED, "not your tenant"))
        try:
            while True:
                yield orchestrator_pb2.WatchMeshResponse(
                    targets=[orchestrator_pb2.TargetStatus(name="fake/echo")]
                )
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def ListModels(
        self, request: orchestrator_pb2.ListModelsRequest, context: Context
    ) -> orchestrator_pb2.ListModelsResponse:
        return orchestrator_pb2.ListModelsResponse(
            models=[
                orchestrator_pb2.ModelInfo(name=name, provider="fake", provider_model=name[5:])
                for name in sorted(SCRIPTS)
            ]
        )


class FakeProcessor(processor_pb2_grpc.ProcessorServiceServicer):
    """Counts whitespace-separated words plus three framing tokens per message."""

    def __init__(self) -> None:
        self.counted: list[tuple[str, dict[str, str]]] = []
        """The model and metadata of each CountTokens call."""

    @staticmethod
    def _count(message: chat_pb2.Message) -> int:
        return len(message.content.split()) + 3

    async def CountTokens(
        self, request: processor_pb2.CountTokensRequest, context: Context
    ) -> processor_pb2.CountTokensResponse:
        metadata = {m.key: m.value for m in context.invocation_metadata() or ()}
        self.counted.append((request.model, metadata))
        if request.model == "fake/missing":
            await abort(context, LlmeshError(Reason.MODEL_NOT_FOUND, "no such model"))
        tokens = (
            sum(self._count(m) for m in request.messages)
            if request.messages
            else len(request.text.split())
        )
        return processor_pb2.CountTokensResponse(tokens=tokens, tokenizer="words", exact=True)

    async def FitContext(
        self, request: processor_pb2.FitContextRequest, context: Context
    ) -> processor_pb2.FitContextResponse:
        kept: list[int] = []
        used = 0
        for i in reversed(range(len(request.messages))):
            cost = self._count(request.messages[i])
            if used + cost > request.max_tokens:
                break
            kept.insert(0, i)
            used += cost
        dropped = [i for i in range(len(request.messages)) if i not in kept]
        return processor_pb2.FitContextResponse(
            messages=[request.messages[i] for i in kept],
            tokens=used,
            dropped_indices=dropped,
            dropped_tokens=sum(self._count(request.messages[i]) for i in dropped),
            tokenizer="words",
            exact=True,
        )


@dataclass
class FakeMesh:
    """The fake upstream services and the server they run on."""

    orchestrator: FakeOrchestrator
    processor: FakeProcessor
    running: RunningServer
    address: str = field(init=False)

    def __post_init__(self) -> None:
        self.address = f"127.0.0.1:{self.running.port}"

    async def set_orchestrator_serving(self, serving: bool) -> None:
        """Flip the orchestrator's gRPC health status."""
        await self.running.set_serving([ORCHESTRATOR], serving)


async def start_fake_mesh() -> FakeMesh:
    """Fake orchestrator and processor on one real gRPC server (with health checking)."""
    orchestrator, processor = FakeOrchestrator(), FakeProcessor()
    running = await start_server(
        [
            ServiceBinding(
                orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server,
                orchestrator,
                ORCHESTRATOR,
            ),
            ServiceBinding(
                processor_pb2_grpc.add_ProcessorServiceServicer_to_server, processor, PROCESSOR
            ),
        ],
        "127.0.0.1:0",
    )
    return FakeMesh(orchestrator, processor, running)
