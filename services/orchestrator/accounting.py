"""What a call consumed and cost, attempt by attempt, and its one ledger record.

An attempt that never left llmesh (skipped by a breaker, refused by a queue, a rate limit
or the budget) consumed nothing. One that reached a provider consumed what the provider
reported, else the engine's estimate (the one the caller was shown), except a failure
before any output, which providers do not bill. `settle` works this out once per call;
the budget commit, the rate-limit refunds and the ledger record all read the same
`Settlement`.

Before each attempt's request leaves, `started` hands the ledger (lazily) the row the call
would get if this process died now: status ``interrupted``, the estimated input of every
attempt sent so far, no output, priced. The call's final record replaces it.
"""

from __future__ import annotations

import time
from typing import Any

from llmesh.services.common.errors import Reason
from llmesh.services.core import CallStatus, Usage
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.trail import AttemptRecord, Outcome, Settlement, attempt_json
from llmesh.services.ledger import LedgerWriter, PriceTable, UsageRecord
from llmesh.services.orchestrator.attempts import NOT_SENT
from llmesh.services.orchestrator.downgrade import downgraded_from
from llmesh.services.orchestrator.engine import UsageEstimator
from llmesh.services.orchestrator.response_cache import CachedReply

__all__ = ["Accounting", "Settlement"]


class Accounting:
    """Usage and cost of attempts from the price table; records calls in the ledger."""

    def __init__(
        self, prices: PriceTable, ledger: LedgerWriter | None, estimate: UsageEstimator
    ) -> None:
        self._prices = prices
        self._ledger = ledger
        self._estimate = estimate

    def attempt_usage(self, a: AttemptRecord, request: Any) -> Usage | None:
        """What an attempt consumed: reported, else estimated; None if it never left llmesh."""
        if a.outcome is Outcome.SKIPPED or a.reason in NOT_SENT:
            return None
        if a.usage is not None:
            return a.usage
        if a.output_chars == 0 and a.outcome is Outcome.FAILED:
            return Usage()  # refused before any output: providers do not bill it
        return self._estimate(request, a.output_chars)  # what the caller was shown

    def attempt_cost(self, a: AttemptRecord, request: Any) -> float:
        """What an attempt cost (0 when it never left llmesh)."""
        usage = self.attempt_usage(a, request)
        return 0.0 if usage is None else self._cost(a, usage, request)

    def settled(self, call: RoutedCall[Any]) -> Settlement:
        """The call's settlement, worked out the first time it is asked for and kept in its
        trail: the budget's commit, the refunds, the ledger record and the cost shown to the
        caller all read the same one. Ask once the call's attempts are over (its terminal
        event passed, or its stream ended)."""
        if call.trail.settlement is None:
            call.trail.settlement = self.settle(call.trail.attempts, call.request)
        return call.trail.settlement

    def settle(self, attempts: list[AttemptRecord], request: Any) -> Settlement:
        """Every attempt's usage, worked out once, and the call's total usage and cost."""
        sent = []
        total, cost = Usage(), 0.0
        for a in attempts:
            usage = self.attempt_usage(a, request)
            if usage is None:
                continue
            sent.append((a, usage))
            total.add(usage)
            cost += self._cost(a, usage, request)
        return Settlement(tuple(sent), total, cost)

    def started(
        self,
        call: RoutedCall[Any],
        wall: float,
        attempt: AttemptRecord,
        request: Any,
        sent: list[tuple[AttemptRecord, Any]],
    ) -> None:
        """Hand the ledger the call's row in flight as `attempt` is about to be sent; `sent`
        holds the attempts sent before (each with its request) and gains this one.

        The row is built only if the writer flushes while the call still runs, so a call
        shorter than a flush interval costs a list append and a dict insert."""
        if self._ledger is None:
            return
        sent.append((attempt, request))

        def row() -> UsageRecord:
            total, cost, trail = Usage(), 0.0, []
            for a, req in sent:
                usage = self._estimate(req, 0)  # the input; output unknown until the end
                total.add(usage)
                cost += self._cost(a, usage, req)
                trail.append(attempt_json(a, usage))
            last = sent[-1][0].target
            return _usage_record(
                call,
                wall,
                provider=last.provider,
                model=last.model,
                attempts=trail,
                input_tokens=total.input_tokens,
                cost_usd=cost,
                status=CallStatus.INTERRUPTED,
                usage_estimated=True,
            )

        self._ledger.started(call.request_id, row)

    def record(
        self,
        call: RoutedCall[Any],
        wall: float,
        settled: Settlement,
        status: CallStatus,
        reason: Reason | None,
    ) -> None:
        """The call's one ledger record, when any attempt reached a provider."""
        if self._ledger is None:
            return
        if not settled.sent:  # nothing reached a provider: nothing to account for
            self._ledger.discard(call.request_id)
            return
        attempts = [a for a, _ in settled.sent]
        last = next((a for a in reversed(attempts) if a.outcome is Outcome.SUCCEEDED), attempts[-1])
        first_token = next((a.ttft for a in attempts if a.ttft is not None), None)
        used = settled.used
        self._ledger.record(
            _usage_record(
                call,
                wall,
                provider=last.target.provider,
                model=last.target.model,
                attempts=[attempt_json(a, u) for a, u in settled.sent],
                input_tokens=used.input_tokens,
                output_tokens=used.output_tokens,
                cache_read_tokens=used.cache_read_tokens,
                cache_write_tokens=used.cache_write_tokens,
                reasoning_tokens=used.reasoning_tokens,
                cost_usd=settled.cost,
                cache_savings_usd=sum(
                    self._prices.savings(a.target.provider, a.target.model, u)
                    for a, u in settled.sent
                ),
                ttft_ms=None if first_token is None else first_token * 1000,
                status=status,
                error_reason=None if reason is None else reason.value,
                usage_estimated=used.estimated,
                downgraded_from=downgraded_from(call.trail.attempts),
            )
        )

    def record_hit(self, call: RoutedCall[Any], wall: float, hit: CachedReply) -> None:
        """The ledger record of a reply served from the response cache: its tokens, no cost."""
        if self._ledger is None:
            return
        original = hit.usage
        self._ledger.record(
            _usage_record(
                call,
                wall,
                provider=hit.provider,
                model=hit.model,
                input_tokens=original.input_tokens,
                output_tokens=original.output_tokens,
                cache_read_tokens=original.cache_read_tokens,
                cache_write_tokens=original.cache_write_tokens,
                reasoning_tokens=original.reasoning_tokens,
                usage_estimated=original.estimated,
                cache_savings_usd=self._prices.cost(hit.provider, hit.model, original),
                status=CallStatus.OK,
                cache_hit=True,
            )
        )

    def _cost(self, a: AttemptRecord, usage: Usage, request: Any) -> float:
        ttl = getattr(request, "prompt_cache_ttl", "5m")  # a chat request's prompt cache
        return self._prices.cost(a.target.provider, a.target.model, usage, cache_ttl=ttl)


def _usage_record(call: RoutedCall[Any], wall: float, **fields: Any) -> UsageRecord:
    """A ledger record of `call`: who, what and when, plus the outcome `fields`."""
    caller, asked = call.caller, call.call
    base: dict[str, Any] = {
        "request_id": call.request_id,
        "ts": wall,
        "tenant": caller.tenant,
        "key_id": caller.key_id,
        "user": asked.metadata.get("user", ""),
        "session": asked.metadata.get("session", ""),
        "route": asked.model,
        "attempts": [],
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": 0.0,
        "cache_savings_usd": 0.0,
        "ttft_ms": None,
        "duration_ms": (time.time() - wall) * 1000,
        "error_reason": None,
        "usage_estimated": False,
        "cache_hit": False,
        "metadata": dict(asked.metadata),
        "priority": asked.priority.label,
        "template": call.trail.template[0] if call.trail.template else "",
        "template_version": call.trail.template[1] if call.trail.template else 0,
        "trace_id": asked.trace_id,
    }
    return UsageRecord(**(base | fields))
