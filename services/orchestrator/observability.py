"""The orchestrator's telemetry wiring: the observing layer, gauges, readiness checks.

Gauges read state the orchestrator already keeps (breakers, target slots and queues, the
ledger writer's buffer) when metrics are collected; readiness checks ask the ledger
database and every configured Redis whether they answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial

from redis import asyncio as aioredis

from llmesh.services.common.config import Config
from llmesh.services.core.handler import Layer
from llmesh.services.ledger import LedgerStore, LedgerWriter
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.layers.observed import Observed
from llmesh.services.telemetry import CallLog, CallMetrics, Labels, Metrics
from llmesh.services.telemetry.readiness import Check
from llmesh.services.telemetry.trace_calls import CallTracer

__all__ = ["BREAKER_STATES", "observe_state", "observed_layer", "readiness_checks"]

BREAKER_STATES = ("closed", "open", "half-open")
"""The values of ``llmesh.breaker.state``'s state label."""

_RANK = {"closed": 0, "half-open": 1, "open": 2}

_READY_ID = "llmesh-readiness-probe"
"""A request id no record has: looking it up proves the ledger answers, cheaply."""


def observed_layer(config: Config, metrics: Metrics | None) -> Layer | None:
    """The observing layer for `config`: metrics (`metrics` None records none), the call
    log and the call's span, as each is on; None when none is."""
    calls = CallLog() if config.telemetry.logs.calls else None
    spans = CallTracer() if config.telemetry.tracing.enabled else None
    recorder = None
    if metrics is not None:
        recorder = CallMetrics(metrics, Labels.from_config(config, metrics.settings.tenants))
    if recorder is None and calls is None and spans is None:
        return None
    return partial(Observed, metrics=recorder, calls=calls, spans=spans)


def observe_state(
    metrics: Metrics, labels: Labels, engine: Orchestrator, writer: LedgerWriter | None
) -> None:
    """Register the gauges' sources: breakers, target slots and queues, the ledger writer."""

    def breakers() -> Iterable[tuple[float, dict[str, str]]]:
        seen: dict[str, str] = {}
        for name, state in engine.breakers.states().items():
            label = labels.target(name)  # unlisted targets share "other": the worst state wins
            if _RANK.get(state, 0) >= _RANK.get(seen.get(label, "closed"), 0):
                seen[label] = state
        for target, state in seen.items():
            for s in BREAKER_STATES:
                yield float(s == state), {"llmesh.target": target, "llmesh.breaker.state": s}

    def lanes(count: str) -> Iterable[tuple[float, dict[str, str]]]:
        limiter = engine.limiter
        totals: dict[str, int] = {}
        read = limiter.in_flight if count == "in_flight" else limiter.queued
        for name in limiter.targets():
            label = labels.target(name)
            totals[label] = totals.get(label, 0) + read(name)
        for target, n in totals.items():
            yield float(n), {"llmesh.target": target}

    metrics.observe("llmesh.breaker.state", breakers)
    metrics.observe("llmesh.target.in_flight", partial(lanes, "in_flight"))
    metrics.observe("llmesh.queue.depth", partial(lanes, "queued"))
    if writer is None:
        return

    def backlog() -> Iterable[tuple[float, dict[str, str]]]:
        yield float(writer.pending), {}

    def lag() -> Iterable[tuple[float, dict[str, str]]]:
        oldest = writer.oldest_pending
        yield (0.0 if oldest is None else max(time.time() - oldest, 0.0)), {}

    def dropped() -> Iterable[tuple[float, dict[str, str]]]:
        yield float(writer.dropped), {}

    metrics.observe("llmesh.ledger.backlog", backlog)
    metrics.observe("llmesh.ledger.lag", lag)
    metrics.observe("llmesh.ledger.dropped", dropped)


def readiness_checks(config: Config, store: LedgerStore | None) -> dict[str, Check]:
    """What the orchestrator needs to be ready: the ledger database and every Redis the
    configuration names (rate limits, response cache, budgets, breakers)."""
    checks: dict[str, Check] = {}
    if store is not None:
        checks["ledger"] = partial(store.get, _READY_ID)
    policy = config.policy
    urls = {
        "redis (rate_limits)": policy.rate_limits.redis_url,
        "redis (cache)": policy.cache.response.redis_url,
        "redis (budgets)": policy.budgets.redis_url,
        "redis (breakers)": config.resilience.breaker.redis_url,
    }
    for name, url in urls.items():
        if url:
            checks[name] = partial(_ping, url)
    return checks


async def _ping(url: str) -> None:
    client = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        await client.ping()
    finally:
        await client.aclose()
