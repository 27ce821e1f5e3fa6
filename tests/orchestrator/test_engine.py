"""The engine's guarantees, with scripted in-memory providers (no network)."""

from __future__ import annotations

import asyncio

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.rpc_errors import usage_metadata
from llmesh.services.core.call import ChatCall
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import (
    Completed,
    Finish,
    Started,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from llmesh.services.core.trail import Outcome
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.aggregate import collect
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.estimate import estimate_usage
from tests.orchestrator.scripted import Scripted, engine


def call(model: str = "a/m", fallbacks: tuple[str, ...] = ()) -> ChatCall:
    return ChatCall(model, ChatRequest((Message(Role.USER, "hello there"),)), fallbacks)


OK = [TextDelta("hel"), TextDelta("lo"), Finish(FinishReason.STOP, "stop", Usage(3, 2))]


async def events_of(eng: Orchestrator, c: ChatCall) -> list[object]:
    return [e async for e in eng.stream(c)]


async def test_started_deltas_and_one_completed() -> None:
    a = Scripted("a", OK)
    events = await events_of(engine(a), call())
    assert isinstance(events[0], Started) and events[0].provider == "a" and events[0].model == "m"
    assert events[1:3] == [TextDelta("hel"), TextDelta("lo")]
    done = events[3]
    assert isinstance(done, Completed) and len(events) == 4
    assert (done.reason, done.provider_reason, done.usage) == (
        FinishReason.STOP,
        "stop",
        Usage(3, 2),
    )
    assert [(r.target.name, r.outcome) for r in done.attempts] == [("a/m", Outcome.SUCCEEDED)]
    assert done.overhead >= 0
    assert a.models[0] == "m"


async def test_stream_without_terminal_event_is_an_error_not_a_finish() -> None:
    a = Scripted("a", [TextDelta("partial")])
    got: list[object] = []
    with pytest.raises(LlmeshError) as info:
        async for e in engine(a).stream(call()):
            got.append(e)
    assert info.value.reason is Reason.STREAM_INTERRUPTED
    assert not any(isinstance(e, Completed) for e in got)


async def test_missing_usage_is_estimated_and_marked() -> None:
    a = Scripted("a", [TextDelta("x" * 40), Finish(FinishReason.STOP, "stop", None)])
    events = await events_of(engine(a), call())
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.usage.estimated and done.usage.output_tokens == 10 and done.usage.input_tokens > 0


async def test_fallback_before_first_event() -> None:
    a = Scripted("a", [LlmeshError(Reason.QUOTA_EXHAUSTED, "no credit")])
    b = Scripted("b", OK)
    events = await events_of(engine(a, b), call(fallbacks=("b/n",)))
    assert isinstance(events[0], Started) and events[0].provider == "b"
    assert len(a.calls) == 1, "quota exhaustion is never retried"


async def test_no_fallback_after_output_reached_the_caller() -> None:
    a = Scripted("a", [TextDelta("x"), LlmeshError(Reason.STREAM_INTERRUPTED, "cut")])
    b = Scripted("b", OK)
    with pytest.raises(LlmeshError) as info:
        await events_of(engine(a, b), call(fallbacks=("b/n",)))
    assert info.value.reason is Reason.STREAM_INTERRUPTED
    assert info.value.metadata["provider"] == "a"
    assert info.value.usage is not None and info.value.usage.output_tokens == 1  # estimated
    assert b.calls == []


async def test_unknown_fallback_fails_before_any_call() -> None:
    a = Scripted("a", OK)
    with pytest.raises(LlmeshError) as info:
        await events_of(engine(a), call(fallbacks=("zzz/n",)))
    assert info.value.reason is Reason.MODEL_NOT_FOUND
    assert a.calls == []


async def test_cancelling_the_consumer_closes_the_provider_stream() -> None:
    a = Scripted("a", [TextDelta("x"), 30.0, *OK])
    eng = engine(a)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in eng.stream(call()):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert a.closed == 1


async def test_collect_joins_tool_call_fragments_per_index() -> None:
    a = Scripted(
        "a",
        [
            ToolCallDelta(0, "c0", "f"),
            ToolCallDelta(1, "c1", "g"),
            ToolCallDelta(0, arguments_delta='{"x":'),
            ToolCallDelta(1, arguments_delta="{}"),
            ToolCallDelta(0, arguments_delta="1}"),
            Finish(FinishReason.TOOL_CALLS, "tool_calls", Usage(1, 1)),
        ],
    )
    reply = await collect(engine(a).stream(call()))
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("c0", "f", '{"x":1}'),
        ("c1", "g", "{}"),
    ]
    assert reply.completed.reason is FinishReason.TOOL_CALLS


async def test_partial_usage_is_typed_on_the_error_and_shown_on_the_wire() -> None:
    used = Usage(5, 2, cache_write_tokens=4, reasoning_tokens=1)
    a = Scripted(
        "a", [TextDelta("x"), UsageUpdate(used), LlmeshError(Reason.STREAM_INTERRUPTED, "cut")]
    )
    with pytest.raises(LlmeshError) as info:
        await events_of(engine(a), call())
    assert info.value.usage == used  # every count, not only those the wire shows
    assert not any(k.startswith("usage.") for k in info.value.metadata)  # no strings inside
    assert usage_metadata(info.value) == {
        "usage.input_tokens": "5",
        "usage.output_tokens": "2",
        "usage.cache_read_tokens": "0",
        "usage.estimated": "false",
    }


def test_the_default_estimator_is_the_one_estimator() -> None:
    assert engine(Scripted("a", OK)).estimate is estimate_usage
