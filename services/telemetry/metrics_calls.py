"""What one finished call adds to the metrics, read from its routed call and attempt trail.

The orchestrator's observing layer hands every call here once it is over (`CallMetrics.
record`): its outcome and reason, and the trail the engine filled in and the accounting
layer settled (attempts, usage, cost). Label values are bounded by configuration
(`Labels`): targets and providers the configuration names, tenants from
``telemetry.metrics.tenants``; anything else is ``other``. Never a request id, never a
model string as a client wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmesh.services.common.config import Config
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.reasons import Reason
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome, Settlement
from llmesh.services.core.usage import CallStatus
from llmesh.services.telemetry.metrics import Metrics

__all__ = ["REJECTIONS", "CallEnd", "CallMetrics", "Labels"]

REJECTIONS = frozenset({Reason.RATE_LIMIT_EXCEEDED, Reason.BUDGET_EXCEEDED, Reason.QUEUE_FULL})
"""Reasons that mean llmesh's own limits refused the call (``llmesh.rejections``)."""

OTHER = "other"
_REMEMBERED = 4096
"""Target names whose label values `CallMetrics` keeps (clients may name many more)."""


@dataclass(frozen=True, slots=True)
class CallEnd:
    """How a call ended, as the observing layer saw it."""

    status: CallStatus
    reason: Reason | None
    ended: float
    """When, on `time.monotonic` (the clock of `RoutedCall.opened`)."""
    switches: int = 0
    """Mid-stream switches to another target."""
    cache_hit: bool = False
    """Answered from the response cache."""


class Labels:
    """Bounded label values: only names the configuration holds, else ``other``."""

    def __init__(
        self, providers: frozenset[str], targets: frozenset[str], tenants: frozenset[str]
    ) -> None:
        self.providers = providers
        self.targets = targets
        self.tenants = tenants

    @classmethod
    def from_config(cls, config: Config, tenants: frozenset[str]) -> Labels:
        """Providers, route and alias targets and listed models of `config`; `tenants` plus
        ``default`` (the tenant of calls without a key) and the tenants with their own rate
        limits or budgets."""
        targets = {t for route in config.routes.values() for t in route.targets}
        targets |= set(config.aliases.values())
        targets |= {f"{name}/{m}" for name, p in config.providers.items() for m in p.models}
        policy = config.policy
        named = {"default", *tenants, *policy.rate_limits.tenants, *policy.budgets.tenants}
        named.discard("*")
        return cls(frozenset(config.providers), frozenset(targets), frozenset(named))

    def provider(self, name: str) -> str:
        """A configured provider's name, else ``other``."""
        return name if name in self.providers else OTHER

    def target(self, target: Target | str) -> str:
        """A configured ``provider/model``, else ``provider/other``."""
        name = target if isinstance(target, str) else target.name
        if name in self.targets:
            return name
        provider = name.partition("/")[0]
        return f"{self.provider(provider)}/{OTHER}"

    def model(self, target: Target) -> str:
        """The model part of `target`'s bounded name."""
        return self.target(target).partition("/")[2]

    def tenant(self, tenant: str) -> str:
        """A configured tenant, else ``other``."""
        return tenant if tenant in self.tenants else OTHER


def _operation(request: Any) -> str:
    return "embeddings" if isinstance(request, EmbeddingRequest) else "chat"


class CallMetrics:
    """Records finished calls into a `Metrics`' instruments.

    It runs once per call on the event loop, so it is written for the interpreter: enum
    values read as ``_value_`` (``.value`` is a Python-level property), targets' label
    values remembered by (provider, model), no intermediate dicts.
    """

    def __init__(self, metrics: Metrics, labels: Labels) -> None:
        self.metrics = metrics
        self.labels = labels
        self._named: dict[tuple[str, str], tuple[str, str, str]] = {}
        """Label values by (provider, model): see `_of`."""

    def started(self, call: RoutedCall[Any]) -> None:
        """A call began streaming."""
        self.metrics.in_flight.add(1, _operation(call.request))

    def _of(self, target: Target) -> tuple[str, str, str]:
        """`target`'s bounded target, provider and model label values (remembered, for up
        to `_REMEMBERED` targets: a mesh has a few dozen)."""
        key = (target.provider, target.model)
        named = self._named.get(key)
        if named is None:
            labels = self.labels
            bounded = labels.target(target)
            named = (bounded, labels.provider(target.provider), bounded.partition("/")[2])
            if len(self._named) < _REMEMBERED:
                self._named[key] = named
        return named

    def record(self, call: RoutedCall[Any], end: CallEnd) -> None:
        """Everything a finished call counts for."""
        m = self.metrics
        operation = _operation(call.request)
        m.in_flight.add(-1, operation)
        tenant = self.labels.tenant(call.caller.tenant)
        trail = call.trail
        attempts = trail.attempts
        last = _last(attempts)
        target, provider, model = self._of(last.target if last is not None else call.targets[0])
        reason = "" if end.reason is None else end.reason._value_
        status = end.status
        m.calls.add(1, operation, status._value_, reason or "none", target, tenant)
        ok = status is CallStatus.OK
        duration = end.ended - call.opened
        m.request_duration.record(
            duration if duration > 0 else 0.0, operation, provider, model, "" if ok else reason
        )
        if end.reason in REJECTIONS:
            m.rejections.add(1, reason, tenant)
        if end.cache_hit:
            m.response_cache_hits.add(1, operation, tenant)
        if end.switches:
            m.switches.add(end.switches, target)
        if trail.deliberate_wait > 0:
            m.call_wait.record(trail.deliberate_wait, operation)
        if trail.queue_wait > 0:
            m.queue_wait.record(trail.queue_wait, target, trail.priority)
        if attempts:
            self._attempts(attempts, operation)
        settled = trail.settlement
        if settled is not None:
            self._settled(settled, operation)
            if settled.cost > 0:
                # The settlement's cost is the call's; it is put on the target that answered
                # (on "other" when nothing was tried).
                if last is None:
                    target = provider = OTHER
                m.cost.add(settled.cost, provider, target, tenant)
        if ok and last is not None and last.ttft is not None:
            first = last.started + last.ttft - call.opened
            m.time_to_first_token.record(first if first > 0 else 0.0, operation, provider, model)
            output = 0 if settled is None else settled.used.output_tokens
            if output > 1 and last.ended is not None:
                per_token = (last.ended - last.started - last.ttft) / (output - 1)
                m.time_per_output_token.record(
                    per_token if per_token > 0 else 0.0, operation, provider, model
                )

    def _attempts(self, attempts: list[AttemptRecord], operation: str) -> None:
        """The attempts' counters: by outcome, retries and moves to the next target."""
        m = self.metrics
        previous: AttemptRecord | None = None
        for a in attempts:
            tried, provider, _ = self._of(a.target)
            reason = "none" if a.reason is None else a.reason._value_
            m.attempts.add(1, tried, provider, a.outcome._value_, reason)
            if a.retry:
                m.retries.add(1, tried)
            elif not a.hedged and previous is not None and previous.target != a.target:
                why = "none" if previous.reason is None else previous.reason._value_
                m.fallbacks.add(1, tried, why)
            if not a.hedged:
                previous = a

    def _settled(self, settled: Settlement, operation: str) -> None:
        """The histograms of the attempts that reached a provider, and their prompt-cache
        tokens."""
        m = self.metrics
        for a, usage in settled.sent:
            _, provider, model = self._of(a.target)
            reason = a.reason
            error = reason._value_ if a.outcome is Outcome.FAILED and reason is not None else ""
            m.operation_duration.record(a.latency, operation, provider, model, error)
            m.token_usage.record(usage.input_tokens, operation, provider, model, error, "input")
            if operation != "embeddings":  # embeddings produce no tokens
                output = usage.output_tokens
                m.token_usage.record(output, operation, provider, model, error, "output")
            if usage.cache_read_tokens:
                m.prompt_cache_tokens.add(usage.cache_read_tokens, provider, model, "read")
            if usage.cache_write_tokens:
                m.prompt_cache_tokens.add(usage.cache_write_tokens, provider, model, "write")


def _last(attempts: list[AttemptRecord]) -> AttemptRecord | None:
    """The attempt that answered, else the last one sent or tried."""
    for a in reversed(attempts):
        if a.outcome is Outcome.SUCCEEDED:
            return a
    return attempts[-1] if attempts else None
