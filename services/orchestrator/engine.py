"""The orchestrator's core: route a call across targets and guarantee how its stream ends.

`Orchestrator.stream` yields `Started`, the reply's deltas (and `Switched` when a call moves
to another target mid-stream), and exactly one `Completed`, or raises `LlmeshError`; an
upstream stream that ends without its terminal event is an error, never a finish.

Before the first token reaches the caller, failures are contained: a target is retried
(tenacity, backoff with jitter, retry-after, retry budget), skipped while its breaker is
open, hedged by the next target when slow, and failed over to the next target of the route
and the request's fallbacks (a pool's deployment is not retried: the next deployment is
the retry, `RoutedCall.failover`). After output reached the caller, the call's mid-stream policy
decides: `never` (error with partial usage), `restart` or `continue` on the next target.
Cancelling the consumer closes every upstream stream the call opened. Targets that cannot
honour an optional feature the request asks for are skipped before anything is sent
(`llmesh.services.orchestrator.capabilities`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import Gate, RoutedCall
from llmesh.services.core.chat import ChatRequest, Message, Role
from llmesh.services.core.events import (
    CallEvent,
    Completed,
    Finish,
    ProviderEvent,
    Started,
    Switched,
)
from llmesh.services.core.policy import MidStreamPolicy, Policy
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.attempts import (
    NO_FALLBACK,
    AttemptTracer,
    Opened,
    Runtime,
    open_attempt,
    percentile,
)
from llmesh.services.orchestrator.capabilities import capable_targets
from llmesh.services.orchestrator.estimate import estimate_usage
from llmesh.services.orchestrator.media import MediaPlan
from llmesh.services.orchestrator.pools import DeploymentStats
from llmesh.services.orchestrator.providers.base import Provider
from llmesh.services.orchestrator.resilience import (
    Breakers,
    BreakerSettings,
    RetryBudget,
    RetryBudgetSettings,
    TargetLimiter,
)
from llmesh.services.orchestrator.resilience.queues import QueueSettings
from llmesh.services.orchestrator.retries import RetrySettings, continue_after, retrying

_log = logging.getLogger("llmesh.orchestrator.engine")


UsageEstimator = Callable[[Any, int], Usage]
"""Estimates usage from a request and the number of output characters produced."""


DEFAULT_HEDGE_DELAY = 1.0
"""Hedge delay in seconds when a percentile is asked for but no TTFT history exists yet."""


class Orchestrator:
    """Routes calls to providers and streams their replies."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        breakers: Breakers | None = None,
        budget: RetryBudget | None = None,
        limiter: TargetLimiter | None = None,
        retry: RetrySettings | None = None,
        estimator: UsageEstimator = estimate_usage,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        media: MediaPlan | None = None,
        trace: AttemptTracer | None = None,
        deployments: DeploymentStats | None = None,
    ) -> None:
        """`trace` starts every attempt's span (tracing's attempt spans); `deployments`
        counts the attempts at pool deployments for the balancer."""
        self._providers = dict(providers)
        self._media = media
        self.deployments = deployments or DeploymentStats(clock=clock)
        """In-flight counts, latency and use of pool deployments (routing reads them)."""
        self._observe = self.deployments.observer()
        self._trace = trace
        self._breakers = breakers or Breakers(BreakerSettings())
        self._budget = budget or RetryBudget(RetryBudgetSettings())
        self._limiter = limiter or TargetLimiter(QueueSettings())
        self._retry = retry or RetrySettings()
        self._estimate = estimator
        self._clock = clock
        self._sleep = sleep
        self._ttfts: dict[str, collections.deque[float]] = {}

    def provider(self, name: str) -> Provider | None:
        """The adapter of the configured provider `name`, if there is one."""
        return self._providers.get(name)

    @property
    def estimate(self) -> UsageEstimator:
        """How usage a provider never reported is estimated (the ledger uses it too)."""
        return self._estimate

    @property
    def breakers(self) -> Breakers:
        """The circuit breakers, one per target."""
        return self._breakers

    @property
    def limiter(self) -> TargetLimiter:
        """The per-target concurrency limits and queues."""
        return self._limiter

    def swap_providers(self, providers: Mapping[str, Provider]) -> list[Provider]:
        """Serve new attempts with `providers` (a config reload); returns the adapters no
        longer used, for the caller to close once the streams they carry have ended."""
        kept = {id(p) for p in providers.values()}
        retired = [p for p in self._providers.values() if id(p) not in kept]
        self._providers = dict(providers)
        return retired

    @property
    def providers(self) -> Mapping[str, Provider]:
        """The adapters serving new attempts, by provider name."""
        return self._providers

    async def stream(self, call: RoutedCall[ChatRequest]) -> AsyncGenerator[CallEvent, None]:
        """Stream the reply to a routed chat call; see the module docstring for the guarantees.

        The call's `trail` holds the attempts afterwards, also when the call fails. Its
        `admit` gates are awaited before each attempt's request is sent (first try, retry,
        hedge, fallback, mid-stream restart or continuation); an attempt they refuse is never
        sent, and a refusal for BUDGET_EXCEEDED ends the call (a refused hedge is simply not
        raced).
        """
        policy, request_id, trail, timeout = (
            call.policy,
            call.request_id,
            call.trail,
            call.remaining(),
        )
        targets = capable_targets(call.targets, self._providers, call.request, trail, self._clock)
        rt = Runtime(
            self._breakers,
            self._limiter,
            self._clock,
            trail,
            _gates(call.admit),
            request_id=request_id,
            client_retry=call.call.client_retry > 0,
            media=None if self._media is None else self._media.for_call(),
            observe=self._observe,
            trace=self._trace,
            failover=call.failover,
            providers=self._providers,  # the call keeps them across a config reload
            priority=call.call.priority,
        )
        trail.priority = call.call.priority.label
        deadline = None if timeout is None else self._clock() + timeout
        request = call.request
        original = request
        total = Usage()
        started = False
        partial: list[str] = []
        last_error: LlmeshError | None = None
        index = 0
        previous: Target | None = None
        last_reason = Reason.INTERNAL
        relay: AsyncGenerator[ProviderEvent, None] | None = None
        try:
            while index < len(targets):
                try:
                    opened, index = await self._open(targets, index, request, policy, rt, deadline)
                except LlmeshError as err:
                    last_error = err
                    if err.reason in NO_FALLBACK:
                        raise
                    _log_fallback(request_id, targets, index, err)
                    index += 1
                    continue
                target = opened.record.target
                if not started:
                    started = True
                    yield Started(request_id, target.provider, target.model)
                elif previous is not None:
                    yield Switched(previous, target, last_reason, policy.mid_stream)
                try:
                    relay = opened.relay()
                    async for event in relay:
                        if isinstance(event, Finish):
                            usage = event.usage or self._estimate(
                                request, sum(len(p) for p in opened.output)
                            )
                            total.add(usage)
                            now = self._clock()
                            yield Completed(
                                event.reason,
                                event.provider_reason,
                                total,
                                tuple(trail.attempts),
                                trail.overhead(now),
                                stop_sequence=event.stop_sequence,
                            )
                            return
                        yield event
                except LlmeshError as err:
                    last_error = err
                    total.add(
                        opened.usage or self._estimate(request, sum(len(p) for p in opened.output))
                    )
                    if err.reason in NO_FALLBACK or policy.mid_stream is MidStreamPolicy.NEVER:
                        raise self._with_usage(err, total, target) from None
                    previous, last_reason = target, err.reason
                    _log_fallback(request_id, targets, index, err, policy.mid_stream.value)
                    partial.extend(opened.output)
                    if policy.mid_stream is MidStreamPolicy.CONTINUE:
                        request = _continuation(original, "".join(partial))
                    else:
                        partial.clear()
                    index += 1
            if last_error is None:  # pragma: no cover - targets is never empty
                raise LlmeshError(Reason.INTERNAL, "no target to try")
            raise self._with_usage(last_error, total, None)
        finally:
            if relay is not None:  # closed by the consumer: the attempt records its output
                await relay.aclose()
            trail.close_running(Outcome.CANCELLED, self._clock())
            if rt.media is not None:
                rt.media.cancel()

    async def _open(
        self,
        targets: list[Target],
        index: int,
        request: ChatRequest,
        policy: Policy,
        rt: Runtime,
        deadline: float | None,
    ) -> tuple[Opened, int]:
        """Open targets[index] (skipping open breakers), hedging with the next one if asked.

        Returns the opened attempt and the index of its target.
        """
        index = await self._skip_open(targets, index, rt)
        first = targets[index]
        if not policy.hedging or index + 1 >= len(targets):
            opened = await self._open_with_retries(
                first, request, policy, rt, deadline, hedged=False
            )
            return opened, index
        racers: dict[asyncio.Task[Opened], int] = {}
        try:
            primary = asyncio.ensure_future(
                self._open_with_retries(first, request, policy, rt, deadline, hedged=False)
            )
            racers[primary] = index
            done, _ = await asyncio.wait({primary}, timeout=self._hedge_delay(first, policy))
            if not done:
                second = await self._skip_open(targets, index + 1, rt, soft=True)
                if second < len(targets):
                    _log.info(
                        "[%s] hedging %s with %s: no first token yet",
                        rt.request_id,
                        first.name,
                        targets[second].name,
                        extra={"request_id": rt.request_id, "target": targets[second].name},
                    )
                    racers[
                        asyncio.ensure_future(
                            self._open_with_retries(
                                targets[second], request, policy, rt, deadline, hedged=True
                            )
                        )
                    ] = second
            return await self._race(racers)
        finally:
            losers = [task for task in racers if not task.done()]
            for task in losers:
                task.cancel()
            if losers:
                await asyncio.gather(*losers, return_exceptions=True)

    @staticmethod
    async def _race(racers: dict[asyncio.Task[Opened], int]) -> tuple[Opened, int]:
        """The first racer to open wins; the others are discarded (cancelled by the caller)."""
        pending = set(racers)
        error: BaseException | None = None
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            winners = [t for t in done if t.exception() is None]
            if winners:
                winner, *late = winners
                for task in late:  # opened in the same instant: it loses too
                    await task.result().discard()
                return winner.result(), racers[winner]
            for task in done:
                error = task.exception()
                if not isinstance(error, LlmeshError):
                    raise error  # type: ignore[misc]
        assert error is not None
        raise error

    async def _skip_open(
        self, targets: list[Target], index: int, rt: Runtime, *, soft: bool = False
    ) -> int:
        """The first index from `index` whose breaker is not open; records skips.

        Raises CIRCUIT_OPEN when every remaining target is open (unless `soft`, which
        returns ``len(targets)`` instead).
        """
        first_error: LlmeshError | None = None
        while index < len(targets):
            target = targets[index]
            if not await self._breakers.is_open(target.name, rt.request_id):
                return index
            now = self._clock()
            record = rt.trail.add(AttemptRecord(target, now))
            record.finish(Outcome.SKIPPED, now, Reason.CIRCUIT_OPEN)
            if first_error is None:
                try:
                    await self._breakers.check(target.name, rt.request_id)
                except LlmeshError as err:
                    first_error = err
            index += 1
        if soft:
            return index
        raise first_error or LlmeshError(Reason.CIRCUIT_OPEN, "every target's breaker is open")

    def _hedge_delay(self, target: Target, policy: Policy) -> float:
        if policy.hedge_delay is not None:
            return policy.hedge_delay
        history = list(self._ttfts.get(target.name, ()))
        value = percentile(history, policy.hedge_percentile or 95.0)
        return DEFAULT_HEDGE_DELAY if value is None else value

    def _remember_ttft(self, target: Target) -> Callable[[float], None]:
        history = self._ttfts.setdefault(target.name, collections.deque(maxlen=256))
        return history.append

    async def _open_with_retries(
        self,
        target: Target,
        request: ChatRequest,
        policy: Policy,
        rt: Runtime,
        deadline: float | None,
        *,
        hedged: bool,
    ) -> Opened:
        provider = rt.providers.get(target.provider)
        if provider is None:
            raise LlmeshError(
                Reason.PROVIDER_NOT_CONFIGURED, f"provider {target.provider!r} is not available"
            )
        if rt.media is not None:  # URL parts the provider needs as bytes, fetched once a call
            left = None if deadline is None else deadline - self._clock()
            request = await rt.media.prepare(target.provider, request, left)
        self._budget.record_request(target.name)
        tries = 0

        async def once() -> Opened:
            nonlocal tries
            tries += 1
            now = self._clock()
            remaining = None if deadline is None else deadline - now
            if remaining is not None and remaining <= 0:
                raise LlmeshError(Reason.DEADLINE_EXCEEDED, "the call's deadline passed")
            record = rt.trail.add(AttemptRecord(target, now, hedged=hedged, retry=tries > 1))
            return await open_attempt(
                provider,
                request,
                record,
                rt,
                timeout=remaining,
                first_token_timeout=policy.first_token_timeout,
                stall_timeout=policy.stall_timeout,
                ttft_history=self._remember_ttft(target),
            )

        async def backoff(seconds: float) -> None:
            t0 = self._clock()
            await self._sleep(seconds)
            rt.trail.deliberate_wait += self._clock() - t0

        try:
            return await once()  # the common case: no retry machinery at all
        except LlmeshError as first:
            if target in rt.failover:  # a pool's next deployment is the retry
                raise
            failure = first
        policy_ = retrying(
            self._retry,
            may_retry=lambda _err: not rt.client_retry and self._budget.try_spend(target.name),
            deadline=deadline,
            clock=self._clock,
            sleep=backoff,
            target=target.name,
            request_id=rt.request_id,
        )
        return await continue_after(policy_, once, failure)

    @staticmethod
    def _with_usage(err: LlmeshError, usage: Usage, target: Target | None) -> LlmeshError:
        """The error, with the partial usage (in `usage`; `rpc_errors` puts it on the wire)
        and the failing target."""
        if target is not None:
            err.metadata.setdefault("provider", target.provider)
            err.metadata.setdefault("model", target.model)
        if usage.input_tokens or usage.output_tokens:
            err.usage = replace(usage)
        return err

    async def aclose(self) -> None:
        """Close every provider's connection pool and the breakers' storage."""
        for provider in self._providers.values():
            await provider.aclose()
        await self._breakers.aclose()


def _log_fallback(
    request_id: str, targets: list[Target], index: int, err: LlmeshError, mid_stream: str = ""
) -> None:
    """A WARNING for a call leaving a target for the next one (or running out of them)."""
    failed = targets[index].name if index < len(targets) else "every target"
    upcoming = targets[index + 1].name if index + 1 < len(targets) else None
    after = f" mid-stream ({mid_stream})" if mid_stream else ""
    _log.warning(
        "[%s] %s failed%s with %s; %s",
        request_id,
        failed,
        after,
        err,
        f"falling back to {upcoming}" if upcoming else "no target left",
        extra={"request_id": request_id, "target": failed, "fallback": upcoming or ""},
    )


def _continuation(request: ChatRequest, partial: str) -> ChatRequest:
    """The request with the partial reply as an assistant prefill to continue from."""
    if not partial:
        return request
    return replace(request, messages=(*request.messages, Message(Role.ASSISTANT, partial)))


def _gates(gates: tuple[Gate, ...]) -> Gate | None:
    """One gate awaiting each of `gates` in order (None when there is none)."""
    if len(gates) <= 1:
        return gates[0] if gates else None

    async def every(record: AttemptRecord, request: Any) -> None:
        for gate in gates:
            await gate(record, request)

    return every
