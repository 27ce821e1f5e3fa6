"""The call pipeline: admission, caching and accounting around the engine.

For each call, in order: rate limits (requests and an estimate of tokens per minute, per
tenant and per key), the response cache (a hit is replayed as a stream, at no cost),
cost-capped routing, a budget reservation of the call's worst-case cost; then the engine
streams the call, admitting each attempt through the call's budget (`admission.spend`:
every attempt is reserved before it is sent, and a reply without an enforced output limit
extends the hold as it streams) and the per-target rate limits; finally, whatever happened
(finish, error, the caller going away), the actual cost is committed and the rest of the
reservation released, over-estimated tokens are refunded, the reply is stored in the
response cache, and exactly one usage record is handed to the ledger (`accounting`) when any attempt
reached a provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from services.common.errors import LlmeshError, Reason
from services.common.policy_settings import ResponseCacheConfig
from services.core import Caller, CallStatus, new_request_id
from services.ledger import LedgerWriter, PriceTable
from services.orchestrator.accounting import Accounting, Settlement
from services.orchestrator.admission import BudgetCaps, BudgetManager, Limit, RateLimiter
from services.orchestrator.admission.spend import DEFAULT_MAX_OUTPUT as DEFAULT_MAX_OUTPUT
from services.orchestrator.admission.spend import (
    CallSpend,
    input_bound,
    open_spend,
    worst_case,
)
from services.orchestrator.attempts import Gate
from services.orchestrator.deadline import Deadline
from services.orchestrator.domain import ChatRequest
from services.orchestrator.engine import (
    ChatCall,
    Completed,
    EngineEvent,
    Orchestrator,
)
from services.orchestrator.estimate import estimate_input_tokens
from services.orchestrator.response_cache import (
    ResponseCache,
    cache_key,
    cacheable,
    record_reply,
    replay,
)
from services.orchestrator.routing import Target
from services.orchestrator.trail import AttemptRecord, Trail


@dataclass(frozen=True)
class Policies:
    """Configured limits and caps; ``"*"`` entries apply to every tenant / key / target."""

    tenant_limits: Mapping[str, Limit] = field(default_factory=dict)
    key_limits: Mapping[str, Limit] = field(default_factory=dict)
    target_limits: Mapping[str, Limit] = field(default_factory=dict)
    tenant_caps: Mapping[str, BudgetCaps] = field(default_factory=dict)
    key_caps: Mapping[str, BudgetCaps] = field(default_factory=dict)
    session_caps: BudgetCaps | None = None
    response_cache_ttl: float = ResponseCacheConfig.ttl


def _pick(table: Mapping[str, Any], name: str) -> Any:
    return table.get(name, table.get("*"))


TokenCounter = Callable[[str, ChatRequest], int]
"""Counts (or estimates) a request's input tokens for a ``provider/model`` name."""


def rough_input_tokens(model: str, request: ChatRequest) -> int:
    """The estimator's input tokens (`estimate.estimate_input_tokens`), for any model."""
    return estimate_input_tokens(request)


class CallPipeline:
    """Wraps an `Orchestrator` with limits, budgets, the response cache and the ledger."""

    def __init__(
        self,
        engine: Orchestrator,
        *,
        prices: PriceTable,
        policies: Policies | None = None,
        ledger: LedgerWriter | None = None,
        budgets: BudgetManager | None = None,
        rate_limiter: RateLimiter | None = None,
        response_cache: ResponseCache | None = None,
        count_input: TokenCounter = rough_input_tokens,
        seed_budget: Callable[[str], Any] | None = None,
    ) -> None:
        self.engine = engine
        self._prices = prices
        self._policies = policies or Policies()
        self._accounting = Accounting(prices, ledger, engine.estimate)
        self._budgets = budgets
        self._limiter = rate_limiter
        self._cache = response_cache
        self._count_input = count_input
        self._seed_budget = seed_budget
        self._seeded: set[str] = set()

    async def _target_gate(self, record: AttemptRecord, request: ChatRequest) -> None:
        """Per-target requests and tokens per minute, checked before each attempt."""
        target = record.target.name
        limit = _pick(self._policies.target_limits, target)
        if limit is None or self._limiter is None:
            return
        tokens = self._count_input(target, request) + (request.max_tokens or DEFAULT_MAX_OUTPUT)
        await self._limiter.acquire(f"target:{target}", limit, tokens)

    # -- admission -------------------------------------------------------------------

    def _limits(self, caller: Caller) -> list[tuple[str, Limit]]:
        out = []
        tenant = _pick(self._policies.tenant_limits, caller.tenant)
        if tenant is not None:
            out.append((f"tenant:{caller.tenant}", tenant))
        if caller.key_id:
            key = _pick(self._policies.key_limits, caller.key_id)
            if key is not None:
                out.append((f"key:{caller.key_id}", key))
        return out

    async def _take_limits(self, subjects: list[tuple[str, Limit]], tokens: int) -> None:
        assert self._limiter is not None
        taken: list[tuple[str, Limit]] = []
        try:
            for subject, limit in subjects:
                await self._limiter.acquire(subject, limit, tokens)
                taken.append((subject, limit))
        except BaseException:
            for subject, limit in taken:  # all or nothing across subjects
                await self._limiter.refund(subject, limit, tokens)
            raise

    async def _scopes(self, call: ChatCall, caller: Caller) -> list[str]:
        """Budget scopes with caps for this call; caps and seeds are set on first sight."""
        assert self._budgets is not None
        wanted: list[tuple[str, BudgetCaps | None]] = [
            (f"tenant:{caller.tenant}", _pick(self._policies.tenant_caps, caller.tenant))
        ]
        if caller.key_id:
            wanted.append((f"key:{caller.key_id}", _pick(self._policies.key_caps, caller.key_id)))
        session = call.metadata.get("session", "")
        if session and self._policies.session_caps is not None:
            wanted.append((f"session:{caller.tenant}:{session}", self._policies.session_caps))
        scopes = []
        for scope, caps in wanted:
            if caps is None:
                continue
            if scope not in self._seeded:
                self._seeded.add(scope)
                self._budgets.set_caps(scope, caps)
                if self._seed_budget is not None and not scope.startswith("session:"):
                    today, month = await self._seed_budget(scope)
                    await self._budgets.seed(scope, today, month)
            scopes.append(scope)
        return scopes

    def _worst_case(self, target: Target, request: ChatRequest, input_tokens: int) -> float:
        return worst_case(self._prices, target, request, input_tokens)

    def _admission(self, spend: CallSpend | None) -> Gate | None:
        """What admits each attempt of a call: its budget first, then the target's rate."""
        rate = self._target_gate if self._limiter and self._policies.target_limits else None
        if spend is None or rate is None:
            return rate if spend is None else spend.admit

        async def both(record: AttemptRecord, request: ChatRequest) -> None:
            await spend.admit(record, request)
            await rate(record, request)

        return both

    def _cap_cost(self, call: ChatCall) -> ChatCall:
        """Route to the cheapest target whose worst case fits `max_cost_usd`."""
        if call.max_cost_usd is None:
            return call
        input_tokens = input_bound(call.request)
        targets, _ = self.engine.targets(call)
        priced = []
        for t in targets:
            if self._prices.price(t.provider, t.model) is None:
                continue  # an unknown price cannot be shown to fit
            priced.append((self._worst_case(t, call.request, input_tokens), t))
        fitting = sorted((p for p in priced if p[0] <= call.max_cost_usd), key=lambda p: p[0])
        if not fitting:
            cheapest = min((p[0] for p in priced), default=None)
            detail = f"; the cheapest target's worst case is ${cheapest:.6f}" if cheapest else ""
            raise LlmeshError(
                Reason.BUDGET_EXCEEDED,
                f"no target of {call.model!r} fits max_cost_usd={call.max_cost_usd}{detail}",
                metadata={
                    "quota.subject": f"request:{call.model}",
                    "quota.description": f"max_cost_usd {call.max_cost_usd}",
                },
            )
        return replace(call, model=fitting[0][1].name, fallbacks=())

    # -- the call --------------------------------------------------------------------

    async def stream(
        self,
        call: ChatCall,
        caller: Caller,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        trail: Trail | None = None,
        deadline: Deadline | None = None,
    ) -> AsyncGenerator[EngineEvent, None]:
        """Stream the call with admission and accounting; see the module docstring.

        A `deadline` (armed by the servicer) bounds the call instead of `timeout`; the
        pipeline disarms it once the terminal event has passed, and a call it cut short is
        recorded as DEADLINE_EXCEEDED, not as cancelled.
        """
        request_id = request_id or new_request_id()
        trail = trail or Trail(started=time.monotonic())
        wall = time.time()
        if deadline is not None:
            timeout = deadline.remaining()
        ends = None if timeout is None else time.monotonic() + timeout
        targets, _ = self.engine.targets(call)  # unknown models fail first
        input_tokens = self._count_input(targets[0].name, call.request)
        tokens = input_tokens + (call.request.max_tokens or DEFAULT_MAX_OUTPUT)
        limits = self._limits(caller) if self._limiter is not None else []
        if limits:
            await self._take_limits(limits, tokens)
        status, reason, cache_hit = CallStatus.ERROR, None, False
        spend: CallSpend | None = None
        settled: Settlement | None = None
        collected: list[EngineEvent] | None = None
        key = None
        try:
            if self._cache is not None and cacheable(
                call.request,
                opt_in=call.response_cache is True,
                opt_out=call.response_cache is False,
            ):
                key = cache_key(
                    call.model,
                    call.fallbacks,
                    call.request,
                    tenant=caller.tenant,
                    max_cost_usd=call.max_cost_usd,
                )
                hit = await self._cache.get(key)
                if hit is not None:
                    cache_hit = True
                    for event in replay(hit, request_id):
                        if isinstance(event, Completed):
                            if deadline is not None:
                                deadline.disarm()
                            event = replace(event, cost_usd=0.0)
                            status = CallStatus.OK
                            # recorded now: a caller that has its reply may close the stream
                            self._accounting.record_hit(call, caller, request_id, wall, hit)
                        yield event
                    return
                collected = []
            call = self._cap_cost(call)
            if self._budgets is not None:
                scopes = await self._scopes(call, caller)
                if scopes:
                    request = call.request
                    spend = await open_spend(
                        self._budgets,
                        scopes,
                        self._prices,
                        self.engine.targets(call)[0],
                        request,
                        lambda a: self._accounting.attempt_cost(a, request),
                    )
            events = self.engine.stream(
                call,
                timeout=timeout,
                request_id=request_id,
                trail=trail,
                admit=self._admission(spend),
            )
            async for event in events if spend is None else spend.watch(events):
                if isinstance(event, Completed):
                    if deadline is not None:
                        deadline.disarm()
                    settled = self._accounting.settle(trail.attempts, call.request)
                    event = replace(event, cost_usd=settled.cost)
                    status = CallStatus.OK
                if collected is not None:
                    collected.append(event)
                yield event
        except LlmeshError as err:
            reason = err.reason
            err.metadata.setdefault("request_id", request_id)  # find it in the ledger
            raise
        except (asyncio.CancelledError, GeneratorExit):
            if status is not CallStatus.OK:  # closing a finished stream early is no cancellation
                if _deadline_passed(deadline, ends):
                    status, reason = CallStatus.ERROR, Reason.DEADLINE_EXCEEDED
                else:
                    status, reason = CallStatus.CANCELLED, Reason.CANCELLED
            raise
        finally:
            if cache_hit:
                if limits and self._limiter is not None:  # a hit consumed no tokens upstream
                    for subject, limit in limits:
                        await self._limiter.refund(subject, limit, tokens)
            else:
                if settled is None:  # no Completed: the attempts are settled only now
                    settled = self._accounting.settle(trail.attempts, call.request)
                used = settled.used
                if spend is not None:
                    await spend.settle(settled.cost)
                if limits and self._limiter is not None:
                    actual = used.input_tokens + used.output_tokens + used.cache_read_tokens
                    for subject, limit in limits:
                        await self._limiter.refund(subject, limit, max(tokens - actual, 0))
                self._accounting.record(call, caller, request_id, wall, settled, status, reason)
                if (
                    status is CallStatus.OK
                    and key is not None
                    and collected
                    and self._cache is not None
                ):
                    reply = record_reply(collected)
                    if reply is not None:
                        ttl = call.response_cache_ttl or self._policies.response_cache_ttl
                        await self._cache.put(key, reply, ttl)


DEADLINE_SLACK = 0.05
"""Seconds before a bare `timeout` within which a cancellation counts as the deadline's."""


def _deadline_passed(deadline: Deadline | None, ends: float | None) -> bool:
    """Whether a call that was cut short was cut by its deadline (else: the caller left)."""
    if deadline is not None:
        return deadline.passed()
    return ends is not None and time.monotonic() >= ends - DEADLINE_SLACK


class BoundPipeline:
    """The pipeline bound to one caller, with the engine's streaming interface.

    Fan-out (the council) drives it like an engine, so every branch is admitted, limited,
    budgeted and recorded in the ledger as a call of its own.
    """

    def __init__(self, pipeline: CallPipeline, caller: Caller) -> None:
        self._pipeline = pipeline
        self._caller = caller

    @property
    def router(self) -> Any:
        """The engine's router."""
        return self._pipeline.engine.router

    def targets(self, call: ChatCall) -> Any:
        """The engine's targets for a call."""
        return self._pipeline.engine.targets(call)

    def stream(
        self,
        call: ChatCall,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        trail: Trail | None = None,
    ) -> AsyncGenerator[EngineEvent, None]:
        """Stream one call as this caller."""
        return self._pipeline.stream(
            call, self._caller, timeout=timeout, request_id=request_id, trail=trail
        )
