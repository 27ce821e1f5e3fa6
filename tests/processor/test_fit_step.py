"""The ``fit`` step of the Prepare RPC over real gRPC: trimming to the window less the reply's
reserve, tool results kept with their call, the move to a larger model, the decision."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from llmesh.services.common.errors import Reason
from llmesh.services.common.fit_summary import SUMMARY_PREFIX
from llmesh.services.common.metrics_settings import MetricsSettings
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.processor.server import ProcessorServer, count_redactions, serve
from llmesh.services.processor.tokenizers import Tokenizers
from llmesh.services.telemetry import build_metrics
from llmesh.v1 import chat_pb2, processor_pb2, processor_pb2_grpc

TRIM = processor_pb2.FIT_STRATEGY_TRIM
LARGER = processor_pb2.FIT_STRATEGY_LARGER_MODEL


@pytest.fixture
async def stub(tokenizers: Tokenizers) -> AsyncIterator[processor_pb2_grpc.ProcessorServiceStub]:
    running: ProcessorServer = await serve("127.0.0.1:0", tokenizers=tokenizers)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        yield processor_pb2_grpc.ProcessorServiceStub(ch)
    await running.stop(None)


def _user(text: str) -> chat_pb2.Message:
    return chat_pb2.Message(role=chat_pb2.ROLE_USER, content=text)


def _conversation() -> list[chat_pb2.Message]:
    """System, two long old turns, a tool call with its result, and a short question."""
    long = " ".join(f"w{i}" for i in range(200))
    return [
        chat_pb2.Message(role=chat_pb2.ROLE_SYSTEM, content="be brief"),
        _user(f"old one {long}"),
        chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, content="ok"),
        _user(f"old two {long}"),
        chat_pb2.Message(
            role=chat_pb2.ROLE_ASSISTANT,
            tool_calls=[chat_pb2.ToolCall(id="c1", name="look", arguments='{"q":"x"}')],
        ),
        chat_pb2.Message(role=chat_pb2.ROLE_TOOL, content=f"found {long}", tool_call_id="c1"),
        _user("so what now, write to a@example.com"),
    ]


def _fit(**rules: object) -> processor_pb2.FitRules:
    return processor_pb2.FitRules(model="openai/gpt-4o-mini", **rules)  # type: ignore[arg-type]


async def _sizes(
    stub: processor_pb2_grpc.ProcessorServiceStub, messages: list[chat_pb2.Message] | None = None
) -> int:
    counted = await stub.CountTokens(
        processor_pb2.CountTokensRequest(
            model="openai/gpt-4o-mini", messages=_conversation() if messages is None else messages
        )
    )
    return int(counted.tokens)


async def test_a_conversation_within_its_budget_is_left_alone(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    total = await _sizes(stub)
    request = processor_pb2.PrepareRequest(
        messages=_conversation(),
        steps=["fit"],
        fit=_fit(strategy=TRIM, context_window=total + 100, reserve_output=100),
    )
    reply = await stub.Prepare(request, timeout=5)
    assert list(reply.messages) == _conversation() and not reply.dropped_indices
    (decision,) = reply.decisions
    assert decision.decision == "fits"
    assert dict(decision.counts) == {"tokens": total, "budget": total, "estimated": 0}


async def test_trim_drops_the_oldest_turns_and_keeps_the_tool_result_with_its_call(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    total = await _sizes(stub)
    kept = _conversation()
    # room for exactly the system message and the last four (from the second old turn)
    budget = await _sizes(stub, [kept[0], *kept[3:]])
    request = processor_pb2.PrepareRequest(
        messages=_conversation(),
        steps=["fit"],
        fit=_fit(context_window=budget + 50, reserve_output=50),
    )
    reply = await stub.Prepare(request, timeout=5)
    assert list(reply.dropped_indices) == [1, 2]
    assert list(reply.messages) == [kept[0], *kept[3:]]
    (decision,) = reply.decisions
    assert decision.decision == "trim" and decision.counts["estimated"] == 0
    counts = dict(decision.counts)
    assert counts["tokens"] + counts["dropped_tokens"] == total
    assert counts["dropped_messages"] == 2 and counts["tokens"] == counts["budget"]
    # room for the tool call, its result and the question: the kept turns start at a user
    # message, so the call and its result go too (together: never a result without its call)
    request.fit.context_window = await _sizes(stub, [kept[0], *kept[4:]]) + 50
    reply = await stub.Prepare(request, timeout=5)
    assert list(reply.dropped_indices) == [1, 2, 3, 4, 5]
    assert list(reply.messages) == [kept[0], kept[6]]
    counts = dict(reply.decisions[0].counts)
    assert counts["tokens"] + counts["dropped_tokens"] == total
    # room for the result and the question but not the call: both dropped
    request.fit.context_window = await _sizes(stub, [kept[0], *kept[5:]]) + 50
    reply = await stub.Prepare(request, timeout=5)
    assert list(reply.dropped_indices) == [1, 2, 3, 4, 5]


async def test_fit_runs_on_the_redacted_texts(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    request = processor_pb2.PrepareRequest(
        messages=_conversation(),
        steps=["redact", "fit"],
        redaction=processor_pb2.RedactionRules(mode=processor_pb2.REDACTION_MODE_PSEUDONYMIZE),
        fit=_fit(context_window=150, reserve_output=10),
    )
    reply = await stub.Prepare(request, timeout=5)
    assert reply.messages[-1].content == "so what now, write to <EMAIL_1>"
    assert [d.step for d in reply.decisions] == ["redact", "fit"]
    assert [p.value for p in reply.pseudonyms] == ["a@example.com"]


async def test_larger_model_moves_the_call_when_the_conversation_fits_there(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    total = await _sizes(stub)
    request = processor_pb2.PrepareRequest(
        messages=_conversation(),
        steps=["fit"],
        fit=_fit(
            strategy=LARGER,
            context_window=200,
            larger_model="openai/gpt-4.1",
            larger_context_window=total + 10,
            larger_reserve_output=10,
        ),
    )
    reply = await stub.Prepare(request, timeout=5)
    assert reply.moved_to == "openai/gpt-4.1" and not reply.dropped_indices
    assert len(reply.messages) == len(_conversation())
    assert reply.decisions[0].decision == "larger_model"
    # too long for the larger model as well: moved, and trimmed to its budget
    request.fit.larger_context_window = 200
    reply = await stub.Prepare(request, timeout=5)
    assert reply.moved_to == "openai/gpt-4.1" and list(reply.dropped_indices) == [1, 2, 3, 4, 5]


async def test_estimates_unknown_windows_and_no_room_are_reported(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    request = processor_pb2.PrepareRequest(
        messages=_conversation(),
        steps=["fit"],
        fit=processor_pb2.FitRules(model="anthropic/claude-haiku-4-5", context_window=100_000),
    )
    reply = await stub.Prepare(request, timeout=5)
    assert reply.decisions[0].decision == "fits" and reply.decisions[0].counts["estimated"] == 1
    request.fit.context_window = 0
    reply = await stub.Prepare(request, timeout=5)
    assert reply.decisions[0].decision == "unknown_window" and not reply.decisions[0].counts
    request.fit.context_window, request.fit.reserve_output = 1000, 1000
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Prepare(request, timeout=5)
    assert from_rpc_error(info.value).reason is Reason.CONTEXT_TOO_LONG
    request.fit.context_window, request.fit.reserve_output = 20, 0
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Prepare(request, timeout=5)
    assert from_rpc_error(info.value).reason is Reason.CONTEXT_TOO_LONG


def test_fit_counts_are_not_counted_as_redactions() -> None:
    metrics = build_metrics(MetricsSettings(enabled=True), "processor")
    assert metrics is not None
    decision = processor_pb2.StepDecision(step="fit", counts={"tokens": 900, "budget": 1000})
    count_redactions(metrics)([decision])
    text = metrics.render().decode()
    metrics.shutdown()
    assert not [line for line in text.splitlines() if line.startswith("llmesh_redactions_total")]


async def test_summarize_names_the_middle_turns_and_leaves_the_messages_whole(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    total = await _sizes(stub)
    kept = _conversation()
    # room for the system message, a 20-token summary and the last two turns (from 3)
    tail = await _sizes(stub, [kept[0], *kept[3:]])
    framing = chat_pb2.Message(role=chat_pb2.ROLE_SYSTEM, content=SUMMARY_PREFIX)
    summary = await _sizes(stub, [framing]) - 3  # the summary message's framing and prefix
    request = processor_pb2.PrepareRequest(
        messages=_conversation(),
        steps=["fit"],
        fit=_fit(
            strategy=processor_pb2.FIT_STRATEGY_SUMMARIZE,
            context_window=tail + summary + 20 + 50,
            reserve_output=50,
            summary_max_tokens=20,
        ),
    )
    reply = await stub.Prepare(request, timeout=5)
    assert list(reply.messages) == _conversation() and not reply.dropped_indices
    assert list(reply.summarize.indices) == [1, 2]
    middle = await _sizes(stub, kept[1:3]) - 3  # less the reply priming
    assert reply.summarize.tokens == middle
    (decision,) = reply.decisions
    assert decision.decision == "summarize"
    assert dict(decision.counts) == {
        "tokens": total,
        "budget": tail + summary + 20,
        "summarize_messages": 2,
        "summarize_tokens": middle,
        "estimated": 0,
    }
    # one token less: only the last turn is kept, the tool call and its result are summarized
    request.fit.context_window -= 1
    reply = await stub.Prepare(request, timeout=5)
    assert list(reply.summarize.indices) == [1, 2, 3, 4, 5]
    # keep_turns 1 summarizes the same span however much room there is
    request.fit.keep_turns = 1
    request.fit.context_window += 1
    reply = await stub.Prepare(request, timeout=5)
    assert list(reply.summarize.indices) == [1, 2, 3, 4, 5]


async def test_summarize_trims_when_a_summary_leaves_no_room(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    kept = _conversation()
    last = await _sizes(stub, [kept[0], kept[6]])
    request = processor_pb2.PrepareRequest(
        messages=_conversation(),
        steps=["fit"],
        fit=_fit(
            strategy=processor_pb2.FIT_STRATEGY_SUMMARIZE,
            context_window=last + 10,
            reserve_output=10,
            summary_max_tokens=500,
        ),
    )
    reply = await stub.Prepare(request, timeout=5)
    assert not reply.HasField("summarize")
    assert reply.decisions[0].decision == "trim"
    assert list(reply.messages) == [kept[0], kept[6]]


async def test_an_unset_summary_length_reserves_512_tokens(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    kept = _conversation()
    framing = chat_pb2.Message(role=chat_pb2.ROLE_SYSTEM, content=SUMMARY_PREFIX)
    room = await _sizes(stub, [kept[0], kept[6]]) + await _sizes(stub, [framing]) - 3
    request = processor_pb2.PrepareRequest(
        messages=_conversation(),
        steps=["fit"],
        fit=_fit(
            strategy=processor_pb2.FIT_STRATEGY_SUMMARIZE,
            context_window=room + 512 + 10,
            reserve_output=10,
            keep_turns=1,
        ),
    )
    reply = await stub.Prepare(request, timeout=5)
    assert reply.decisions[0].decision == "summarize"
    request.fit.context_window -= 1
    reply = await stub.Prepare(request, timeout=5)
    assert reply.decisions[0].decision == "trim"
