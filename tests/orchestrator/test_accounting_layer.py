"""The accounting layer without a network: the ledger records what the caller saw, and a
finished call leaves nothing for the garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import cast

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.rpc_errors import usage_metadata
from llmesh.services.core import CallStatus
from llmesh.services.core.call import Call, ChatCall, RoutedCall
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role, ToolCall
from llmesh.services.core.events import Completed, Finish, TextDelta
from llmesh.services.core.trail import attempt_json
from llmesh.services.core.usage import Usage
from llmesh.services.ledger import LedgerWriter, PriceTable, UsageRecord
from llmesh.services.orchestrator.accounting import Accounting
from llmesh.services.orchestrator.layers import Accounted
from llmesh.services.orchestrator.path import CallPath
from tests.orchestrator.scripted import Scripted, engine


class Ledger:
    """Keeps the records handed to it."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []
        self.starts: list[UsageRecord] = []

    def record(self, rec: UsageRecord) -> None:
        self.records.append(rec)

    def started(self, request_id: str, row: Callable[[], UsageRecord]) -> None:
        self.starts.append(row())

    def discard(self, request_id: str) -> None:
        pass


def _call() -> ChatCall:
    messages = (
        Message(Role.USER, "what is the weather in Oslo?"),
        Message(Role.ASSISTANT, "", tool_calls=(ToolCall("c1", "get_weather", '{"q":"Oslo"}'),)),
        Message(Role.TOOL, "sunny", tool_call_id="c1"),
    )
    return ChatCall("a/m", ChatRequest(messages))


def _pipeline(*scripts: Scripted) -> tuple[CallPath, Ledger]:
    """The accounting layer around a scripted engine."""
    ledger = Ledger()
    prices = PriceTable({}, source_date="test")
    eng = engine(*scripts)
    accounting = Accounting(prices, cast(LedgerWriter, ledger), eng.estimate)
    return CallPath(eng.router, Accounted(eng.engine, accounting)), ledger


def _counts(rec: UsageRecord) -> Usage:
    return Usage(
        rec.input_tokens,
        rec.output_tokens,
        rec.cache_read_tokens,
        rec.cache_write_tokens,
        rec.reasoning_tokens,
        rec.usage_estimated,
    )


async def test_an_unreported_finish_shows_the_caller_the_ledgers_estimate() -> None:
    pipe, ledger = _pipeline(
        Scripted("a", [TextDelta("x" * 41), Finish(FinishReason.STOP, "stop", None)])
    )
    events = [e async for e in pipe.stream(_call())]
    done = events[-1]
    assert isinstance(done, Completed) and done.usage.estimated
    (rec,) = ledger.records
    assert _counts(rec) == done.usage
    assert rec.status is CallStatus.OK
    assert rec.attempts == [attempt_json(done.attempts[0], done.usage)]


async def test_a_cut_stream_shows_the_caller_the_ledgers_estimate() -> None:
    cut = LlmeshError(Reason.STREAM_INTERRUPTED, "cut")
    pipe, ledger = _pipeline(Scripted("a", [TextDelta("y" * 9), cut]))
    with pytest.raises(LlmeshError) as info:
        async for _ in pipe.stream(_call()):
            pass
    assert info.value.usage is not None and info.value.usage.estimated
    (rec,) = ledger.records
    assert _counts(rec) == info.value.usage
    assert (rec.status, rec.error_reason) == (CallStatus.ERROR, "STREAM_INTERRUPTED")
    wire = usage_metadata(info.value)
    assert wire["usage.input_tokens"] == str(rec.input_tokens)


async def test_a_call_is_handed_to_the_ledger_as_started_before_its_request_is_sent() -> None:
    pipe, ledger = _pipeline(
        Scripted("a", [TextDelta("x" * 41), Finish(FinishReason.STOP, "stop", None)])
    )
    events = [e async for e in pipe.stream(_call())]
    done = events[-1]
    assert isinstance(done, Completed)
    (start,) = ledger.starts
    (rec,) = ledger.records
    assert start.request_id == rec.request_id
    assert (start.status, start.usage_estimated, start.output_tokens) == (
        CallStatus.INTERRUPTED,
        True,
        0,
    )
    assert start.input_tokens == rec.input_tokens > 0  # the same estimate of the input
    assert (start.provider, start.model) == ("a", "m")


async def test_a_finished_call_leaves_no_reference_cycle() -> None:
    """Everything a call made is freed when the last reference goes, not by the garbage
    collector: a cycle through the call (a gate that refers to the call holding it) kept
    each call's objects until a collection, and the collections cost more than any other
    part of telemetry."""
    pipe, ledger = _pipeline(
        Scripted("a", [TextDelta("x" * 41), Finish(FinishReason.STOP, "stop", None)])
    )
    gc.collect()
    events = [e async for e in pipe.stream(_call())]
    assert isinstance(events[-1], Completed)
    del events
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable stays to be seen
    try:
        gc.collect()
        cycles = [type(o).__name__ for o in gc.garbage if isinstance(o, RoutedCall | Call)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert cycles == []
    assert len(ledger.records) == 1
