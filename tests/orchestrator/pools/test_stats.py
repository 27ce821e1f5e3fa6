"""Peak EWMA latency, the minute's use window and in-flight counts, on a fake clock."""

from __future__ import annotations

import math

import pytest

from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import Finish, ProviderEvent, TextDelta
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Trail
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.pools import DeploymentStats, PeakEwma, Window
from llmesh.services.orchestrator.pools.stats import DEFAULT_LATENCY


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_slower_sample_is_taken_at_once_a_faster_one_is_blended_by_age() -> None:
    ewma = PeakEwma(0.0, initial=0.1)
    ewma.observe(0.5, 0.0, decay=10)
    assert ewma.value(0.0, 10) == 0.5  # the peak, at once
    ewma.observe(0.1, 10.0, decay=10)  # one time constant later
    decayed = 0.5 * math.exp(-1)
    weight = 1 - math.exp(-1)
    assert ewma.value(10.0, 10) == pytest.approx(decayed * (1 - weight) + 0.1 * weight)


def test_the_estimate_decays_toward_zero_while_no_sample_comes() -> None:
    ewma = PeakEwma(0.0, initial=1.0)
    assert ewma.value(0.0, 5) == 1.0
    assert ewma.value(5.0, 5) == pytest.approx(math.exp(-1))
    assert ewma.value(50.0, 5) < 0.001  # an idle slow deployment is tried again


def test_the_window_counts_the_last_minute_only() -> None:
    window = Window()
    window.add(0.2, 1, 100)
    window.add(0.7, 1, 50)
    window.add(30.0, 1, 10)
    assert window.used(59.9) == (3, 160)
    assert window.used(60.5) == (1, 10)  # the first second left the window
    assert window.used(91.0) == (0, 0)


REQUEST = ChatRequest((Message(Role.USER, "one two three four"),))


async def _events(*events: ProviderEvent, clock: Clock, wait: float = 0.0):  # type: ignore[no-untyped-def]
    clock.now += wait
    for event in events:
        yield event


async def test_attempts_at_watched_targets_are_counted_in_flight_timed_and_used() -> None:
    clock = Clock()
    stats = DeploymentStats(clock=clock)
    stats.watched = frozenset({"p/m"})
    observe = stats.observer()
    record = AttemptRecord(Target("p", "m"), clock())
    events = observe(
        record,
        REQUEST,
        Trail(started=clock()),
        _events(TextDelta("hi"), Finish(FinishReason.STOP, "stop", None), clock=clock, wait=0.25),
    )
    assert stats.inflight("p/m") == 0  # nothing is sent before the stream starts
    first = await anext(events)
    assert first == TextDelta("hi")
    assert stats.inflight("p/m") == 1
    assert stats.latency("p/m") == pytest.approx(0.25)  # the time to first token
    record.usage = Usage(40, 2)
    await events.aclose()
    assert stats.inflight("p/m") == 0
    assert stats.used("p/m") == (1, 42)  # the estimate at send, corrected at the end


async def test_other_targets_pass_unwatched() -> None:
    stats = DeploymentStats(clock=Clock())
    inner = _events(TextDelta("x"), clock=Clock())
    record = AttemptRecord(Target("q", "m"), 0.0)
    assert stats.observer()(record, REQUEST, Trail(started=0.0), inner) is inner
    assert stats.latency("q/m") == DEFAULT_LATENCY
