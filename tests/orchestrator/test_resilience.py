"""Retries, breakers, failover, mid-stream policies, timeouts, hedging and queues in the engine."""

from __future__ import annotations

import asyncio
import logging

import pytest

from llmesh.services.common.config import RouteConfig
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import ChatCall
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import Completed, Finish, Started, Switched, TextDelta
from llmesh.services.core.policy import CallOptions, MidStreamPolicy
from llmesh.services.core.trail import Outcome, Trail
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.aggregate import collect
from llmesh.services.orchestrator.resilience import (
    Breakers,
    BreakerSettings,
    QueueSettings,
    RetryBudget,
    RetryBudgetSettings,
    TargetLimiter,
)
from llmesh.services.orchestrator.retries import RetrySettings
from tests.orchestrator.scripted import Scripted, engine

OK = [TextDelta("hel"), TextDelta("lo"), Finish(FinishReason.STOP, "stop", Usage(3, 2))]
FAST_RETRY = RetrySettings(initial_backoff=0.001, max_backoff=0.002, jitter=0.0)


def call(model: str = "a/m", *fallbacks: str, **options: object) -> ChatCall:
    return ChatCall(
        model,
        ChatRequest((Message(Role.USER, "hello there"),)),
        fallbacks,
        options=CallOptions(**options),  # type: ignore[arg-type]
    )


async def run(eng: object, c: ChatCall, trail: Trail | None = None) -> list[object]:
    return [e async for e in eng.stream(c, trail=trail)]  # type: ignore[attr-defined]


class Sleeps:
    """A fake sleep that records what the retry policy asked for."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


# -- retries -----------------------------------------------------------------------------


async def test_retryable_failures_are_retried_with_backoff() -> None:
    busy = [LlmeshError(Reason.OVERLOADED, "busy")]
    a = Scripted("a", busy, busy, OK)
    sleeps = Sleeps()
    events = await run(engine(a, retry=RetrySettings(jitter=0.0), sleep=sleeps), call())
    done = events[-1]
    assert isinstance(done, Completed)
    assert [(r.outcome, r.retry) for r in done.attempts] == [
        (Outcome.FAILED, False),
        (Outcome.FAILED, True),
        (Outcome.SUCCEEDED, True),
    ]
    assert sleeps.asked == [0.25, 0.5]  # exponential from initial_backoff


async def test_retry_after_is_honoured() -> None:
    limited = [LlmeshError(Reason.RATE_LIMITED, "slow down", retry_after=2.5)]
    a = Scripted("a", limited, OK)
    sleeps = Sleeps()
    await run(engine(a, retry=FAST_RETRY, sleep=sleeps), call())
    assert sleeps.asked == [2.5]


@pytest.mark.parametrize(
    "reason",
    [Reason.QUOTA_EXHAUSTED, Reason.UPSTREAM_INVALID_REQUEST, Reason.UPSTREAM_AUTH_FAILED],
)
async def test_hopeless_failures_are_never_retried(reason: Reason) -> None:
    a = Scripted("a", [LlmeshError(reason, "no")], OK)
    with pytest.raises(LlmeshError) as info:
        await run(engine(a, retry=FAST_RETRY, sleep=Sleeps()), call())
    assert info.value.reason is reason and len(a.calls) == 1


async def test_retry_budget_stops_retries_during_an_outage() -> None:
    down = [LlmeshError(Reason.UPSTREAM_UNAVAILABLE, "down")]
    a = Scripted("a", down)
    budget = RetryBudget(RetryBudgetSettings(ratio=0.2, window=60.0, min_retries=0))
    eng = engine(
        a,
        retry=RetrySettings(max_attempts=5, jitter=0.0),
        budget=budget,
        breakers=Breakers(BreakerSettings(fail_max=1000)),
        sleep=Sleeps(),
    )
    for _ in range(10):
        with pytest.raises(LlmeshError):
            await run(eng, call())
    # 10 requests at 20 %: 2 retries in all, not 4 per request
    assert len(a.calls) == 12


# -- breakers and failover ---------------------------------------------------------------


async def test_open_breaker_is_skipped_and_fails_fast() -> None:
    down = [LlmeshError(Reason.UPSTREAM_UNAVAILABLE, "down")]
    a = Scripted("a", down)
    b = Scripted("b", OK)
    clock = [1000.0]
    breakers = Breakers(BreakerSettings(fail_max=2, reset_timeout=30), clock=lambda: clock[0])
    eng = engine(a, b, retry=RetrySettings(max_attempts=1), breakers=breakers)
    for _ in range(2):
        await run(eng, call("a/m", "b/n"))
    assert len(a.calls) == 2
    trail = Trail(started=0.0)
    events = await run(eng, call("a/m", "b/n"), trail)
    assert len(a.calls) == 2, "an open breaker is not called"
    assert isinstance(events[0], Started) and events[0].provider == "b"
    assert next((r.target.name, r.outcome, r.reason) for r in trail.attempts) == (
        "a/m",
        Outcome.SKIPPED,
        Reason.CIRCUIT_OPEN,
    )
    with pytest.raises(LlmeshError) as info:
        await run(eng, call("a/m"))
    assert info.value.reason is Reason.CIRCUIT_OPEN
    assert info.value.retry_after == pytest.approx(30.0)
    clock[0] += 31  # cool-down over: a trial goes through, succeeds, the breaker closes
    a.scripts = [OK]
    await run(eng, call("a/m"))
    assert len(a.calls) == 3
    assert not await breakers.is_open("a/m")


async def test_route_targets_in_order() -> None:
    a = Scripted("a", [LlmeshError(Reason.OVERLOADED, "busy")])
    b = Scripted("b", OK)
    routes = {"smart": RouteConfig("smart", ("a/m", "b/n"))}
    eng = engine(a, b, routes=routes, retry=RetrySettings(max_attempts=1))
    events = await run(eng, call("smart"))
    assert isinstance(events[0], Started) and (events[0].provider, events[0].model) == ("b", "n")


# -- mid-stream policies -----------------------------------------------------------------

CUT = [TextDelta("hel"), LlmeshError(Reason.STREAM_INTERRUPTED, "cut")]


async def test_never_ends_with_an_error_carrying_partial_usage() -> None:
    a = Scripted("a", CUT)
    b = Scripted("b", OK)
    with pytest.raises(LlmeshError) as info:
        await run(engine(a, b), call("a/m", "b/n"))
    assert info.value.usage is not None and info.value.usage.estimated
    assert b.calls == []


async def test_restart_tells_the_client_to_discard_and_starts_over() -> None:
    a = Scripted("a", CUT)
    b = Scripted("b", OK)
    eng = engine(a, b)
    events = await run(eng, call("a/m", "b/n", mid_stream=MidStreamPolicy.RESTART))
    switch = [e for e in events if isinstance(e, Switched)]
    assert len(switch) == 1
    assert (switch[0].source.name, switch[0].target.name, switch[0].reason) == (
        "a/m",
        "b/n",
        Reason.STREAM_INTERRUPTED,
    )
    assert switch[0].policy is MidStreamPolicy.RESTART
    assert b.calls[0].messages == a.calls[0].messages
    reply = await collect(eng.stream(call("a/m", "b/n", mid_stream=MidStreamPolicy.RESTART)))
    assert reply.text == "hello"  # the discarded "hel" is gone
    assert isinstance(events[-1], Completed)
    assert events[-1].usage.output_tokens == 2 + 1  # b's usage plus a's partial, estimated


async def test_continue_asks_the_next_target_to_go_on_from_the_partial_output() -> None:
    a = Scripted("a", CUT)
    b = Scripted("b", [TextDelta("lo"), Finish(FinishReason.STOP, "stop", Usage(3, 1))])
    reply = await collect(
        engine(a, b).stream(call("a/m", "b/n", mid_stream=MidStreamPolicy.CONTINUE))
    )
    assert reply.text == "hello"
    assert b.calls[0].messages[-1] == Message(Role.ASSISTANT, "hel")


# -- timeouts ----------------------------------------------------------------------------


async def test_first_token_timeout_fails_over() -> None:
    a = Scripted("a", [5.0, *OK])
    b = Scripted("b", OK)
    eng = engine(a, b, retry=RetrySettings(max_attempts=1))
    trail = Trail(started=0.0)
    events = await run(eng, call("a/m", "b/n", first_token_timeout=0.05), trail)
    assert isinstance(events[0], Started) and events[0].provider == "b"
    assert trail.attempts[0].reason is Reason.UPSTREAM_TIMEOUT
    assert a.closed == 1


async def test_stall_timeout_counts_as_a_mid_stream_failure() -> None:
    a = Scripted("a", [TextDelta("hel"), 5.0, *OK])
    b = Scripted("b", OK)
    events = await run(
        engine(a, b),
        call("a/m", "b/n", stall_timeout=0.05, mid_stream=MidStreamPolicy.RESTART),
    )
    switch = next(e for e in events if isinstance(e, Switched))
    assert switch.reason is Reason.UPSTREAM_TIMEOUT
    assert a.closed == 1


# -- hedging -----------------------------------------------------------------------------


async def test_hedge_starts_the_next_target_and_cancels_the_loser() -> None:
    a = Scripted("a", [5.0, *OK])
    b = Scripted("b", OK)
    trail = Trail(started=0.0)
    events = await run(engine(a, b), call("a/m", "b/n", hedge=True, hedge_delay=0.02), trail)
    assert isinstance(events[0], Started) and events[0].provider == "b"
    await asyncio.sleep(0)
    assert a.closed == 1, "the slow attempt's stream was closed"
    outcome = {r.target.name: (r.outcome, r.hedged) for r in trail.attempts}
    assert outcome == {"a/m": (Outcome.CANCELLED, False), "b/n": (Outcome.SUCCEEDED, True)}


async def test_no_hedge_when_the_first_target_is_quick() -> None:
    a = Scripted("a", OK)
    b = Scripted("b", OK)
    await run(engine(a, b), call("a/m", "b/n", hedge=True, hedge_delay=1.0))
    assert b.calls == []


async def test_cancelling_during_a_hedge_leaves_nothing_running() -> None:
    a = Scripted("a", [5.0, *OK])
    b = Scripted("b", [5.0, *OK])
    eng = engine(a, b)
    before = set(asyncio.all_tasks())
    task = asyncio.create_task(run(eng, call("a/m", "b/n", hedge=True, hedge_delay=0.01)))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert a.closed == 1 and b.closed == 1
    assert set(asyncio.all_tasks()) - before <= {asyncio.current_task()}


# -- queues ------------------------------------------------------------------------------


async def test_full_queue_answers_at_once() -> None:
    a = Scripted("a", [TextDelta("x"), 5.0, *OK])
    limiter = TargetLimiter(QueueSettings(max_concurrency=1, max_queue=0))
    eng = engine(a, limiter=limiter, retry=RetrySettings(max_attempts=1))
    first = asyncio.create_task(run(eng, call()))
    await asyncio.sleep(0.05)
    with pytest.raises(LlmeshError) as info:
        await run(eng, call())
    assert info.value.reason is Reason.QUEUE_FULL and info.value.retry_after is not None
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert limiter.in_flight("a/m") == 0


# -- one logical call counts once; client retries ---------------------------------------

BUSY = [LlmeshError(Reason.OVERLOADED, "HTTP 503: upstream busy")]


def retried(c: ChatCall, n: int) -> ChatCall:
    """The caller's n-th retry of `c` (``llmesh-retry-count: n``)."""
    return ChatCall(c.model, c.request, c.fallbacks, options=c.options, client_retry=n)


async def test_llmesh_retries_of_one_call_count_once_against_the_breaker() -> None:
    a = Scripted("a", BUSY)
    breakers = Breakers(BreakerSettings(fail_max=3))
    eng = engine(a, retry=FAST_RETRY, breakers=breakers, sleep=Sleeps())
    with pytest.raises(LlmeshError) as info:
        await run(eng, call())
    assert len(a.calls) == 3  # llmesh's own three tries
    assert info.value.reason is Reason.OVERLOADED
    assert not await breakers.is_open("a/m")
    assert (await breakers.views())[0].failure_count == 1


async def test_an_sdk_call_and_its_retries_neither_multiply_nor_open_the_breaker() -> None:
    a = Scripted("a", BUSY)
    breakers = Breakers(BreakerSettings(fail_max=2))
    eng = engine(a, retry=FAST_RETRY, breakers=breakers, sleep=Sleeps())
    errors = []
    for n in range(3):  # an SDK's first try and its two retries of the same call
        with pytest.raises(LlmeshError) as info:
            await run(eng, retried(call(), n))
        errors.append(info.value)
    assert len(a.calls) == 3 + 1 + 1, "a client's retry is not retried by llmesh again"
    assert [e.reason for e in errors] == [Reason.OVERLOADED] * 3, "the cause, not CIRCUIT_OPEN"
    assert not await breakers.is_open("a/m")


async def test_a_client_retry_still_fails_over_to_the_next_target() -> None:
    a = Scripted("a", BUSY)
    b = Scripted("b", OK)
    events = await run(
        engine(a, b, retry=FAST_RETRY, sleep=Sleeps()), retried(call("a/m", "b/n"), 1)
    )
    assert isinstance(events[0], Started) and events[0].provider == "b"
    assert len(a.calls) == 1


async def test_circuit_open_carries_the_failure_that_opened_it() -> None:
    a = Scripted("a", BUSY)
    breakers = Breakers(BreakerSettings(fail_max=2))
    eng = engine(a, retry=RetrySettings(max_attempts=1), breakers=breakers)
    for _ in range(2):
        with pytest.raises(LlmeshError):
            await run(eng, call())
    with pytest.raises(LlmeshError) as info:
        await run(eng, call())
    err = info.value
    assert err.reason is Reason.CIRCUIT_OPEN
    assert "OVERLOADED: HTTP 503: upstream busy" in err.message
    assert err.metadata["cause.reason"] == "OVERLOADED"
    assert err.metadata["cause.message"] == "HTTP 503: upstream busy"


# -- log lines ---------------------------------------------------------------------------


def llmesh_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("llmesh.")]


async def test_retries_fallbacks_and_unreachable_providers_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="llmesh")
    refused = [LlmeshError(Reason.UPSTREAM_UNAVAILABLE, "cannot reach upstream: refused")]
    a = Scripted("a", refused)
    b = Scripted("b", OK)
    sleeps = Sleeps()
    eng = engine(a, b, retry=RetrySettings(max_attempts=2, jitter=0.0), sleep=sleeps)
    events = [e async for e in eng.stream(call("a/m", "b/n"), request_id="req_42")]
    assert isinstance(events[0], Started) and events[0].provider == "b"
    lines = llmesh_lines(caplog)
    failure = (
        logging.WARNING,
        "[req_42] attempt at a/m failed before its first token: "
        "UPSTREAM_UNAVAILABLE: cannot reach upstream: refused",
    )
    assert lines == [
        failure,
        (
            logging.INFO,
            "[req_42] retrying a/m after attempt 1 failed with UPSTREAM_UNAVAILABLE; "
            "waiting 0.25 s",
        ),
        failure,
        (
            logging.WARNING,
            "[req_42] a/m failed with UPSTREAM_UNAVAILABLE: cannot reach upstream: refused; "
            "falling back to b/n",
        ),
    ]
    assert all(r.request_id == "req_42" for r in caplog.records if r.name.startswith("llmesh."))  # type: ignore[attr-defined]


async def test_a_hedge_and_a_mid_stream_switch_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="llmesh")
    a = Scripted("a", [5.0, *OK])
    b = Scripted("b", OK)
    eng = engine(a, b)
    c = call("a/m", "b/n", hedge=True, hedge_delay=0.01)
    [e async for e in eng.stream(c, request_id="req_h")]
    assert (logging.INFO, "[req_h] hedging a/m with b/n: no first token yet") in llmesh_lines(
        caplog
    )
    caplog.clear()
    cut = Scripted("a", [TextDelta("par"), LlmeshError(Reason.STREAM_INTERRUPTED, "reset")])
    eng = engine(cut, Scripted("b", OK))
    c = call("a/m", "b/n", mid_stream=MidStreamPolicy.RESTART)
    [e async for e in eng.stream(c, request_id="req_m")]
    assert (
        logging.WARNING,
        "[req_m] a/m failed mid-stream (restart) with STREAM_INTERRUPTED: reset; "
        "falling back to b/n",
    ) in llmesh_lines(caplog)
