"""What the balancer knows of each deployment: attempts in flight, latency, last minute's use.

`DeploymentStats` watches the upstream stream of every attempt at a pool's deployment (an
attempt observer of the engine, `observer`), keyed by ``provider/model`` target,
so a deployment keeps its figures across config reloads and whichever pool sent the call:

- in flight: attempts from the request being sent until their stream is closed;
- latency: a peak EWMA of the time to first token, as Finagle's and Linkerd's balancers keep
  it (`PeakEwma`): a slower sample replaces the estimate at once, a faster one is blended in
  with weight ``1 - exp(-dt / decay)``, and the estimate decays toward zero while no sample
  comes, so an idle slow deployment is tried again. Failures are not samples: a failing
  deployment is removed by its circuit breaker;
- use: requests and tokens of the last 60 seconds, in one-second buckets (`Window`);
  requests and the input estimate count when an attempt is sent, the rest of its reported
  usage when it ends.

Per process: workers (and replicas) each balance on what they see.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import TypeAlias

from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.events import (
    Finish,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
)
from llmesh.services.core.trail import AttemptRecord, Trail
from llmesh.services.orchestrator.estimate import estimate_input_tokens

__all__ = ["DEFAULT_LATENCY", "WINDOW", "DeploymentStats", "Observer", "PeakEwma", "Window"]

Observer: TypeAlias = Callable[
    [AttemptRecord, ChatRequest, Trail, AsyncGenerator[ProviderEvent, None]],
    AsyncGenerator[ProviderEvent, None],
]
"""The engine's attempt observer (`attempts.Observer`, which this module cannot import)."""

DEFAULT_LATENCY = 0.05
"""Seconds a deployment with no sample yet is assumed to take to a first token: low, so a
new deployment is tried soon (Linkerd starts from a default RTT the same way)."""

WINDOW = 60
"""Seconds of use an rpm / tpm limit is compared with."""


class PeakEwma:
    """A peak-sensitive, exponentially weighted moving average of latency on a clock."""

    __slots__ = ("at", "estimate", "sampled")

    def __init__(self, now: float, initial: float = DEFAULT_LATENCY) -> None:
        self.estimate = initial
        self.at = now
        self.sampled = False
        """Whether a sample came: the first one replaces the assumed `initial` value."""

    def value(self, now: float, decay: float) -> float:
        """The estimate at `now`, decayed toward zero since the last sample."""
        elapsed = max(now - self.at, 0.0)
        return self.estimate * math.exp(-elapsed / decay) if decay > 0 else self.estimate

    def observe(self, sample: float, now: float, decay: float) -> None:
        """Take one latency sample: a peak at once, else blended by how old the estimate is."""
        current = self.value(now, decay)
        if sample >= current or not self.sampled:
            self.estimate, self.sampled = sample, True
        else:
            weight = 1.0 - math.exp(-max(now - self.at, 0.0) / decay) if decay > 0 else 1.0
            self.estimate = current * (1.0 - weight) + sample * weight
        self.at = now


class Window:
    """Requests and tokens over the last `WINDOW` seconds, in one-second buckets."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: deque[list[float]] = deque()  # [second, requests, tokens]

    def add(self, now: float, requests: float, tokens: float) -> None:
        """Count `requests` and `tokens` at `now`."""
        second = math.floor(now)
        if self._buckets and self._buckets[-1][0] == second:
            bucket = self._buckets[-1]
            bucket[1] += requests
            bucket[2] += tokens
        else:
            self._buckets.append([second, requests, tokens])
        self._trim(now)

    def used(self, now: float) -> tuple[float, float]:
        """(requests, tokens) counted in the last `WINDOW` seconds."""
        self._trim(now)
        return sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets)

    def _trim(self, now: float) -> None:
        oldest = math.floor(now) - WINDOW
        while self._buckets and self._buckets[0][0] <= oldest:
            self._buckets.popleft()


class _Deployment:
    __slots__ = ("inflight", "latency", "window")

    def __init__(self, now: float) -> None:
        self.inflight = 0
        self.latency = PeakEwma(now)
        self.window = Window()


class DeploymentStats:
    """Per-target in-flight counts, latency estimates and last minute's use."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        decay: Callable[[str], float] | None = None,
    ) -> None:
        """`decay` gives a target's latency time constant (its pool's ``latency_decay``)."""
        self._clock = clock
        self._targets: dict[str, _Deployment] = {}
        self.decay: Callable[[str], float] = decay or (lambda _target: 10.0)
        """A target's latency time constant; the reloader points it at the current pools."""
        self.watched: frozenset[str] = frozenset()
        """The targets whose attempts are counted (the pools' deployments); the attempts at
        any other target pass unwatched, at no cost."""

    def observer(self) -> Observer:
        """An attempt observer counting the watched targets' attempts."""

        def observe(
            record: AttemptRecord,
            request: ChatRequest,
            trail: Trail,
            events: AsyncGenerator[ProviderEvent, None],
        ) -> AsyncGenerator[ProviderEvent, None]:
            if record.target.name not in self.watched:
                return events
            return self._watched(record, request, events)

        return observe

    def _get(self, target: str) -> _Deployment:
        entry = self._targets.get(target)
        if entry is None:
            entry = self._targets[target] = _Deployment(self._clock())
        return entry

    def inflight(self, target: str) -> int:
        """Attempts at `target` sent and not yet closed."""
        entry = self._targets.get(target)
        return 0 if entry is None else entry.inflight

    def latency(self, target: str) -> float:
        """The target's current latency estimate in seconds (decayed to now)."""
        entry = self._targets.get(target)
        if entry is None:
            return DEFAULT_LATENCY
        return entry.latency.value(self._clock(), self.decay(target))

    def used(self, target: str) -> tuple[float, float]:
        """(requests, tokens) sent to `target` in the last minute."""
        entry = self._targets.get(target)
        return (0.0, 0.0) if entry is None else entry.window.used(self._clock())

    def sent(self, target: str, tokens: float) -> None:
        """An attempt at `target` was sent, with `tokens` input tokens (estimated)."""
        entry = self._get(target)
        entry.inflight += 1
        entry.window.add(self._clock(), 1, tokens)

    def first_token(self, target: str, seconds: float) -> None:
        """An attempt at `target` produced its first token `seconds` after it was sent."""
        now = self._clock()
        self._get(target).latency.observe(seconds, now, self.decay(target))

    def ended(self, target: str, extra_tokens: float) -> None:
        """An attempt at `target` was closed; `extra_tokens` more were used than counted."""
        entry = self._get(target)
        entry.inflight = max(entry.inflight - 1, 0)
        if extra_tokens:
            entry.window.add(self._clock(), 0, extra_tokens)

    async def _watched(
        self,
        record: AttemptRecord,
        request: ChatRequest,
        events: AsyncGenerator[ProviderEvent, None],
    ) -> AsyncGenerator[ProviderEvent, None]:
        target = record.target.name
        estimate = estimate_input_tokens(request)
        self.sent(target, estimate)
        t0 = self._clock()
        waiting = True
        try:
            async for event in events:
                if waiting and isinstance(
                    event, TextDelta | ReasoningDelta | ToolCallDelta | Finish
                ):
                    waiting = False
                    self.first_token(target, self._clock() - t0)
                yield event
        finally:
            try:
                await events.aclose()
            finally:
                usage = record.usage
                extra = 0 if usage is None else usage.input_tokens + usage.output_tokens - estimate
                self.ended(target, max(extra, -estimate))
