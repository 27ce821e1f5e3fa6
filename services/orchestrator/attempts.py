"""One attempt at one target: open it (queue slot, breaker, first token), then relay it.

`open_attempt` returns an `Opened` attempt only once the target produced its first token
(or finished), so everything before that point can be retried, hedged or failed over
without the caller seeing anything. `Opened.relay` streams the rest with the stall
timeout. Both close the upstream stream and release the queue slot on every way out:
success, failure, timeout and cancellation.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import Gate
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.events import (
    Finish,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from llmesh.services.core.priority import Priority
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome, Trail
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.media import CallMedia
from llmesh.services.orchestrator.providers.base import Provider
from llmesh.services.orchestrator.resilience import Breakers, TargetLimiter
from llmesh.services.telemetry.current import attach, detach

_log = logging.getLogger("llmesh.orchestrator.attempts")

Observer: TypeAlias = Callable[
    [AttemptRecord, ChatRequest, Trail, AsyncGenerator[ProviderEvent, None]],
    AsyncGenerator[ProviderEvent, None],
]
"""Wraps an attempt's upstream stream (the pools' deployment counts); the engine closes the
wrapper once the attempt's record is final."""


class TracedAttempt(Protocol):
    """One attempt's span, as the engine drives it (`AttemptTracer`)."""

    events: AsyncGenerator[ProviderEvent, None]
    """The stream to read: the upstream's own, unless the span watches it (content capture)."""
    context: Any
    """The context current while the request is sent (the adapter writes its
    ``traceparent`` from it)."""

    async def close(self) -> None:
        """Close `events`, then end the span from the attempt's final record."""
        ...


AttemptTracer: TypeAlias = Callable[
    [AttemptRecord, ChatRequest, Trail, AsyncGenerator[ProviderEvent, None]], TracedAttempt
]
"""Starts an attempt's span (tracing's `AttemptSpans`): nothing is added between the
upstream's events and the engine, and the span is ended from the record when the attempt's
stack closes the stream."""


@dataclass(frozen=True)
class Runtime:
    """What attempts share: breakers, queues, the clock, the call's trail, its admission."""

    breakers: Breakers
    limiter: TargetLimiter
    clock: Callable[[], float]
    trail: Trail
    gate: Gate | None = None
    request_id: str = ""
    """The call's id, for log lines and the breakers' transition logs."""
    client_retry: bool = False
    """The caller says this call is its retry of one that failed (``llmesh-retry-count`` >
    0): its failures are not counted against breakers again, and llmesh does not retry it."""
    media: CallMedia | None = None
    """Turns part URLs into bytes for the providers that need them, once per call."""
    observe: Observer | None = None
    """Wraps each attempt's upstream stream (None: nothing watches)."""
    trace: AttemptTracer | None = None
    """Starts each attempt's span (None: tracing off)."""
    failover: frozenset[Target] = frozenset()
    """Targets not retried: a failure moves on to the next target (`RoutedCall.failover`)."""
    providers: Mapping[str, Provider] = field(default_factory=dict)
    """The adapters by provider name when the call started (a reload swaps the engine's)."""
    priority: Priority = Priority.NORMAL
    """The call's tier: where it waits in a saturated target's queue."""


@dataclass
class Opened:
    """An attempt whose first token has arrived; owns the upstream stream and queue slot."""

    record: AttemptRecord
    events: AsyncGenerator[ProviderEvent, None]
    head: list[ProviderEvent]
    """Events read while waiting for the first token, to be relayed first."""
    stack: AsyncExitStack
    runtime: Runtime
    stall_timeout: float | None
    output: list[str] = field(default_factory=list)
    """Text and tool-call fragments relayed so far (for estimates and `continue`)."""
    usage: Usage | None = None
    """The latest usage the provider reported."""

    async def relay(self) -> AsyncGenerator[ProviderEvent, None]:
        """Yield every event up to and including `Finish`; raise `LlmeshError` otherwise."""
        rt = self.runtime
        name = self.record.target.name
        try:
            for event in self.head:
                self._note(event)
                if isinstance(event, Finish):
                    await self._succeeded(event)
                    yield event
                    return
                yield event
            self.head = []
            # The per-token loop: locals only, and text (nearly every event) first.
            clock, trail, events, output = rt.clock, rt.trail, self.events, self.output
            stall = self.stall_timeout
            while True:
                t0 = clock()
                try:
                    if stall is None:
                        event = await anext(events)
                    else:
                        async with asyncio.timeout(stall):
                            event = await anext(events)
                except StopAsyncIteration:
                    raise LlmeshError(
                        Reason.STREAM_INTERRUPTED, "upstream stream ended before its terminal event"
                    ) from None
                except TimeoutError:
                    raise LlmeshError(
                        Reason.UPSTREAM_TIMEOUT, f"no token for {stall:g} s (stall timeout)"
                    ) from None
                finally:
                    trail.upstream_wait += clock() - t0
                if type(event) is TextDelta:
                    output.append(event.text)
                    yield event
                    continue
                self._note(event)
                if isinstance(event, Finish):
                    await self._succeeded(event)
                    yield event
                    return
                yield event
        except LlmeshError as err:
            self.record.finish(Outcome.FAILED, rt.clock(), err.reason)
            _log_failure(rt, self.record, err, "mid-stream")
            await rt.breakers.record_failure(
                name,
                err.reason,
                err.message,
                request_id=rt.request_id,  # counted: the opening's success reset the count
            )
            raise
        except BaseException:
            self.record.finish(Outcome.CANCELLED, rt.clock())
            raise
        finally:
            if self.record.outcome is not Outcome.SUCCEEDED:  # else `_succeeded` did it
                self.record.usage = self.usage
                self.record.output_chars = sum(len(p) for p in self.output)
            await self.stack.aclose()

    def _note(self, event: ProviderEvent) -> None:
        if isinstance(event, TextDelta):
            self.output.append(event.text)
        elif isinstance(event, ToolCallDelta):
            self.output.append(event.arguments_delta)
        elif isinstance(event, UsageUpdate) or (
            isinstance(event, Finish) and event.usage is not None
        ):
            self.usage = event.usage

    async def _succeeded(self, finish: Finish) -> None:
        """Close the attempt as a success before its `Finish` is passed on."""
        self.record.finish(Outcome.SUCCEEDED, self.runtime.clock())
        self.record.terminal = finish
        self.record.usage = self.usage
        self.record.output_chars = sum(len(p) for p in self.output)
        await self.stack.aclose()  # release the upstream and the queue slot at once

    async def discard(self, outcome: Outcome = Outcome.CANCELLED) -> None:
        """Close an opened attempt that will not be relayed (a hedge that lost)."""
        self.record.finish(outcome, self.runtime.clock())
        await self.stack.aclose()


NO_FALLBACK = frozenset(
    {Reason.CANCELLED, Reason.DEADLINE_EXCEEDED, Reason.INVALID_REQUEST, Reason.BUDGET_EXCEEDED}
)
"""Failures that another target cannot cure (an attempt the budget refused is not sent)."""

NOT_SENT = frozenset(
    {Reason.CIRCUIT_OPEN, Reason.QUEUE_FULL, Reason.RATE_LIMIT_EXCEEDED, Reason.BUDGET_EXCEEDED}
)
"""Attempt failures that happen before a request leaves llmesh (they do not count against
the target's breaker, and cost nothing)."""


def _counted(rt: Runtime, record: AttemptRecord) -> bool:
    """Whether a failure before the first token counts against the breaker: once per call
    and target, so neither llmesh's own retries nor a client's retries of the call count
    again. (A failure after the first token always counts: the opening's success reset the
    breaker's count.)"""
    return not (record.retry or rt.client_retry)


def _log_failure(rt: Runtime, record: AttemptRecord, err: LlmeshError, when: str) -> None:
    """One WARNING per failed attempt that reached (or tried to reach) the provider; an
    unreachable provider shows here as UPSTREAM_UNAVAILABLE "cannot reach upstream"."""
    _log.warning(
        "[%s] attempt at %s failed %s: %s",
        rt.request_id or "-",
        record.target.name,
        when,
        err,
        extra={"request_id": rt.request_id, "target": record.target.name},
    )


def _is_token(event: ProviderEvent) -> bool:
    return isinstance(event, TextDelta | ReasoningDelta | ToolCallDelta | Finish)


async def open_attempt(
    provider: Provider,
    request: ChatRequest,
    record: AttemptRecord,
    runtime: Runtime,
    *,
    timeout: float | None,
    first_token_timeout: float | None,
    stall_timeout: float | None,
    ttft_history: Callable[[float], None],
) -> Opened:
    """Take a queue slot, pass the breaker, start the stream and wait for its first token."""
    name = record.target.name
    stack = AsyncExitStack()
    rt = runtime
    try:
        if rt.limiter.limited:
            q0 = rt.clock()
            await stack.enter_async_context(rt.limiter.slot(name, rt.priority))
            waited = rt.clock() - q0
            rt.trail.deliberate_wait += waited
            rt.trail.queue_wait += waited
        # else no slot to take, no wait: nothing for the wait histograms of this attempt
        await rt.breakers.check(name, rt.request_id)
        if rt.gate is not None:
            await rt.gate(record, request)
        events = provider.stream(record.target.model, request, timeout=timeout)
        if rt.observe is not None:
            events = rt.observe(record, request, rt.trail, events)
        sending = None
        if rt.trace is None:
            stack.push_async_callback(events.aclose)
        else:
            span = rt.trace(record, request, rt.trail, events)
            stack.push_async_callback(span.close)  # the stream's close, then the span's end
            events, sending = span.events, attach(span.context)
        head: list[ProviderEvent] = []
        t0 = rt.clock()
        limit = first_token_timeout
        if timeout is not None:
            limit = timeout if limit is None else min(limit, timeout)
        try:
            async with asyncio.timeout(limit):
                while not head or not _is_token(head[-1]):
                    head.append(await anext(events))
        except StopAsyncIteration:
            raise LlmeshError(
                Reason.STREAM_INTERRUPTED, "upstream stream ended before its first token"
            ) from None
        except TimeoutError:
            if timeout is not None and limit == timeout:  # the caller's own deadline
                raise LlmeshError(
                    Reason.DEADLINE_EXCEEDED, "the call's deadline passed before a first token"
                ) from None
            raise LlmeshError(
                Reason.UPSTREAM_TIMEOUT, f"no first token within {limit:g} s"
            ) from None
        finally:
            rt.trail.upstream_wait += rt.clock() - t0
            if sending is not None:  # the request went out under the attempt's span
                detach(sending)
        now = rt.clock()
        record.ttft = now - record.started
        ttft_history(record.ttft)
        await rt.breakers.record_success(name, rt.request_id)
        return Opened(record, events, head, stack, rt, stall_timeout)
    except LlmeshError as err:
        record.finish(Outcome.FAILED, rt.clock(), err.reason)
        if err.reason not in NOT_SENT:
            _log_failure(rt, record, err, "before its first token")
            await rt.breakers.record_failure(
                name,
                err.reason,
                err.message,
                counted=_counted(rt, record),
                request_id=rt.request_id,
            )
        await stack.aclose()
        raise
    except BaseException:
        record.finish(Outcome.CANCELLED, rt.clock())
        await stack.aclose()
        raise


def percentile(values: list[float], pct: float) -> float | None:
    """The `pct` percentile (nearest rank) of `values`, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100 * len(ordered)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]
