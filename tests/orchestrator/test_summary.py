"""The fit step's summarize strategy in the steps layer, against a real processor: the
summary call through the mesh (its caller, metadata and request), the assembled
conversation, the fallbacks to trimming, and no fit step on a summary call."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.fit_summary import SUMMARY_PREFIX
from llmesh.services.common.model_settings import ModelCapabilities
from llmesh.services.common.step_settings import StepsConfig, parse_steps
from llmesh.services.core.call import Call, RoutedCall
from llmesh.services.core.caller import Caller
from llmesh.services.core.chat import (
    ChatRequest,
    FinishReason,
    ImagePart,
    Message,
    Role,
    TextPart,
    ToolCall,
)
from llmesh.services.core.events import CallEvent, Completed, Started, TextDelta
from llmesh.services.core.policy import Policy
from llmesh.services.core.target import Target
from llmesh.services.core.trail import Trail
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.layers.steps import Processed
from llmesh.services.orchestrator.model_catalog import ModelCatalog
from llmesh.services.orchestrator.steps import ProcessorClient
from llmesh.services.orchestrator.steps.summary import (
    INSTRUCTIONS,
    SUMMARY_OF,
    summary_request,
    transcript,
)
from llmesh.services.processor.server import serve
from llmesh.services.processor.tokenizers import Tokenizers

TARGET = Target("openai", "gpt-4o-mini")
WINDOW = 600


def _steps(**fit: Any) -> StepsConfig:
    settings = {"strategy": "summarize", "summary_model": "cheap", "summary_max_tokens": 40}
    steps = parse_steps("r", {"pre": ["fit"], "fit": {**settings, **fit}})
    assert steps is not None
    return steps


class Inner:
    """The rest of the path: records the requests and answers "ok"."""

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        self.requests.append(call.request)
        return self._events()

    async def _events(self) -> AsyncGenerator[CallEvent, None]:
        yield Started("req_any", TARGET.provider, TARGET.model)
        yield TextDelta("ok")
        yield Completed(FinishReason.STOP, "stop", Usage())


class FakeMesh:
    """The mesh's call path for summary calls: answers `reply`, or raises `error`."""

    def __init__(self, reply: str = "", error: LlmeshError | None = None) -> None:
        self.reply, self.error = reply, error
        self.calls: list[tuple[Call[Any], str, float | None]] = []

    def __call__(
        self, call: Call[Any], request_id: str, timeout: float | None
    ) -> AsyncGenerator[CallEvent, None]:
        self.calls.append((call, request_id, timeout))
        return self._events()

    async def _events(self) -> AsyncGenerator[CallEvent, None]:
        if self.error is not None:
            raise self.error
        yield Started("req_summary", "emulator", "cheap")
        if self.reply:
            yield TextDelta(self.reply)
        yield Completed(FinishReason.STOP, "stop", Usage())


@pytest.fixture(scope="module")
def tokenizers() -> Tokenizers:
    loaded = Tokenizers()
    loaded.warm()
    return loaded


@pytest.fixture
async def client(tokenizers: Tokenizers) -> AsyncIterator[ProcessorClient]:
    running = await serve("127.0.0.1:0", tokenizers=tokenizers)
    processor = ProcessorClient(f"127.0.0.1:{running.port}")
    yield processor
    await processor.aclose()
    await running.stop(None)


def _conversation() -> tuple[Message, ...]:
    """A system prompt, eight turns of about 60 tokens (one with a tool call), a question."""
    out = [Message(Role.SYSTEM, "You answer briefly.")]
    for i in range(8):
        words = " ".join(f"fact{i}x{j}" for j in range(12))
        out.append(Message(Role.USER, f"turn {i}: {words}"))
        if i == 3:
            out.append(Message(Role.ASSISTANT, tool_calls=(ToolCall("c3", "look", "{}"),)))
            out.append(Message(Role.TOOL, "found it", tool_call_id="c3"))
        out.append(Message(Role.ASSISTANT, f"noted {i}"))
    out.append(Message(Role.USER, "so what is the answer"))
    return tuple(out)


def _layer(inner: Inner, client: ProcessorClient, mesh: FakeMesh | None, **fit: Any) -> Processed:
    caps = {TARGET.name: ModelCapabilities(context_window=WINDOW, max_output_tokens=100)}
    return Processed(
        inner,
        steps_for={"r": _steps(**fit)}.get,
        client=client,
        catalog=lambda: ModelCatalog(caps),
        mesh=mesh,
    )


def _routed(metadata: dict[str, str] | None = None) -> RoutedCall[ChatRequest]:
    call = Call(
        "r",
        ChatRequest(messages=_conversation()),
        metadata=metadata or {"user": "ann", "session": "s1", "other": "x"},
        caller=Caller(tenant="acme", key_id="k1"),
    )
    return RoutedCall(call, (TARGET,), Policy(), "req_parent", Trail(time.monotonic()), timeout=30)


async def _run(layer: Processed, call: RoutedCall[ChatRequest]) -> list[CallEvent]:
    return [e async for e in layer.stream(call)]


async def test_the_middle_turns_are_replaced_by_a_summary_from_the_mesh(
    client: ProcessorClient,
) -> None:
    inner, mesh = Inner(), FakeMesh("they listed facts 0 to 6")
    call = _routed()
    await _run(_layer(inner, client, mesh), call)
    (summary_call, request_id, timeout) = mesh.calls[0]
    assert len(mesh.calls) == 1 and request_id.startswith("req_") and timeout is not None
    assert summary_call.model == "cheap" and summary_call.caller == call.caller
    assert summary_call.metadata == {"user": "ann", "session": "s1", SUMMARY_OF: "req_parent"}
    sent = summary_call.request
    assert sent.max_tokens == 40 and sent.messages[0].content == INSTRUCTIONS
    original = _conversation()
    (request,) = inner.requests
    kept = request.messages
    # the system prompt, the summary, then the last two turns whole
    assert kept[0] == original[0], kept
    assert kept[1] == Message(Role.SYSTEM, SUMMARY_PREFIX + "they listed facts 0 to 6")
    assert kept[2:] == original[-3:]
    assert sent.messages[1].content == transcript(original[1:-3])
    notes = call.trail.notes or []
    assert notes[0].startswith("fit: summarize budget=500 estimated=0 summarize_messages=16 ")
    assert notes[1].startswith("fit: summarized messages=16 tokens_before=")
    assert notes[1].endswith(f"summary_model=cheap summary_request={request_id}")
    assert notes[2].startswith("fit: fits budget=500 estimated=0 tokens=")


async def test_a_failed_summary_call_leaves_trimming_to_fit_the_call(
    client: ProcessorClient,
) -> None:
    inner = Inner()
    mesh = FakeMesh(error=LlmeshError(Reason.RATE_LIMITED, "slow down"))
    call = _routed()
    events = await _run(_layer(inner, client, mesh), call)
    assert isinstance(events[-1], Completed)
    kept = inner.requests[0].messages
    assert kept[0] == _conversation()[0] and kept[-1] == _conversation()[-1]
    assert all(not m.content.startswith(SUMMARY_PREFIX) for m in kept)
    notes = call.trail.notes or []
    assert notes[1] == "fit: summary by cheap failed (RATE_LIMITED); trimming"
    assert notes[2].startswith("fit: trim budget=500 ")


async def test_an_empty_summary_leaves_trimming_to_fit_the_call(client: ProcessorClient) -> None:
    inner, call = Inner(), _routed()
    await _run(_layer(inner, client, FakeMesh("")), call)
    notes = call.trail.notes or []
    assert notes[1].startswith("fit: summary by cheap (request req_") and "empty" in notes[1]
    assert notes[2].startswith("fit: trim budget=500 ")


async def test_a_summary_too_long_for_the_last_turn_is_dropped_for_trimming(
    client: ProcessorClient,
) -> None:
    inner, call = Inner(), _routed()
    await _run(_layer(inner, client, FakeMesh("blah " * 600)), call)
    kept = inner.requests[0].messages
    assert all(not m.content.startswith(SUMMARY_PREFIX) for m in kept)
    notes = call.trail.notes or []
    assert "leaves no room for the last turn; trimming" in notes[1]
    assert notes[2].startswith("fit: trim budget=500 ")


async def test_a_longer_summary_than_asked_is_kept_and_the_oldest_kept_turns_go(
    client: ProcessorClient, tokenizers: Tokenizers
) -> None:
    counter, original = tokenizers.for_model(TARGET.model), _conversation()

    def tokens(summary: str, turns: int) -> int:
        kept = [original[0], Message(Role.SYSTEM, SUMMARY_PREFIX + summary), *original[-turns:]]
        return counter.conversation_tokens(kept)

    # far over its 40 tokens: room for the last turn (1 message), not the two last (3)
    summary = next(
        text
        for k in range(100, 500)
        if tokens(text := "s" + " s" * k, 1) <= WINDOW - 100 < tokens(text, 3)
    )
    inner, call = Inner(), _routed()
    await _run(_layer(inner, client, FakeMesh(summary)), call)
    kept = inner.requests[0].messages
    assert kept == (original[0], Message(Role.SYSTEM, SUMMARY_PREFIX + summary), original[-1])
    assert (call.trail.notes or [])[2].startswith("fit: trim budget=500 ")


async def test_a_summary_call_runs_no_fit_step(client: ProcessorClient) -> None:
    # the summary model is the route itself: its summary call comes back through the layer
    inner = Inner()
    nested: list[RoutedCall[Any]] = []

    def mesh(call: Call[Any], request_id: str, timeout: float | None) -> Any:
        routed = RoutedCall(call, (TARGET,), Policy(), request_id, Trail(time.monotonic()))
        nested.append(routed)
        return layer.stream(routed)

    caps = {TARGET.name: ModelCapabilities(context_window=WINDOW, max_output_tokens=100)}
    layer = Processed(
        inner,
        steps_for={"r": _steps(summary_model="r")}.get,
        client=client,
        catalog=lambda: ModelCatalog(caps),
        mesh=mesh,
    )
    call = _routed()
    await _run(layer, call)
    (summary,) = nested
    assert summary.trail.notes is None  # no step ran on it: it went out as asked
    assert inner.requests[0] is summary.request and len(inner.requests) == 2
    assert (call.trail.notes or [])[1].startswith("fit: summarized messages=16 ")


async def test_a_caller_s_summary_metadata_does_not_skip_the_fit_step(
    client: ProcessorClient,
) -> None:
    inner, mesh = Inner(), FakeMesh("short")
    call = _routed({SUMMARY_OF: "req_other"})
    await _run(_layer(inner, client, mesh), call)
    assert len(mesh.calls) == 1 and (call.trail.notes or [])[0].startswith("fit: summarize ")


def test_the_transcript_names_roles_tool_calls_results_and_media() -> None:
    messages = [
        Message(Role.USER, parts=(TextPart("look at"), ImagePart(url="https://x/y.png"))),
        Message(Role.ASSISTANT, "checking", tool_calls=(ToolCall("c1", "zoom", '{"x":2}'),)),
        Message(Role.TOOL, "a cat", tool_call_id="c1"),
        Message(Role.ASSISTANT, "It is a cat.", name="bot"),
    ]
    assert transcript(messages) == (
        "user: look at [image]\n\n"
        'assistant: checking\n  called zoom (c1) with {"x":2}\n\n'
        "tool result (c1): a cat\n\n"
        "assistant (bot): It is a cat."
    )
    request = summary_request(messages, 99)
    assert request.max_tokens == 99 and request.temperature is None
    assert [m.role for m in request.messages] == [Role.SYSTEM, Role.USER]
