"""Putting the orchestrator's call pipeline together from configuration.

Builds (explicitly, at start-up, never at import) the price table, the usage ledger and its
batched writer, the API key store and authenticator, budgets, rate limits and the response
cache, and closes them in order on shutdown (the ledger writer flushes last records first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.auth import Authenticator, check_bind, open_key_store
from services.auth.bind import auth_required
from services.common.config import Config, ConfigError
from services.common.policy_settings import PolicyConfig
from services.ledger import LedgerStore, LedgerWriter, PriceTable, open_store
from services.orchestrator.admission import BudgetManager, RateLimiter
from services.orchestrator.engine import Orchestrator
from services.orchestrator.pipeline import CallPipeline, Policies
from services.orchestrator.response_cache import ResponseCache


@dataclass
class Assembly:
    """The pipeline and what it owns."""

    pipeline: CallPipeline
    authenticator: Authenticator
    ledger_store: LedgerStore | None
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def aclose(self) -> None:
        """Flush the ledger and close every store and connection, in order."""
        for close in self.closers:
            await close()


def policies_from_config(policy: PolicyConfig) -> Policies:
    """The call policies of the (already validated) ``budgets``, ``rate_limits`` and
    ``cache`` sections."""
    budgets, limits = policy.budgets, policy.rate_limits
    return Policies(
        tenant_limits=limits.tenants,
        key_limits=limits.keys,
        target_limits=limits.targets,
        tenant_caps=budgets.tenants,
        key_caps=budgets.keys,
        session_caps=budgets.sessions,
        response_cache_ttl=policy.cache.response.ttl,
    )


async def assemble(config: Config, engine: Orchestrator, *, bind_host: str) -> Assembly:
    """Build the pipeline for `engine`; refuses an unauthenticated non-loopback bind."""
    policies = policies_from_config(config.policy)
    try:
        prices = PriceTable.defaults().with_overrides(
            {key: entry.as_mapping() for key, entry in config.policy.prices.items()}
        )
    except ValueError as exc:  # a new entry without input and output prices
        raise ConfigError(f"prices: {exc}") from exc
    closers: list[Callable[[], Awaitable[Any]]] = []
    try:
        keys = await open_key_store(config.database_url)
        closers.append(keys.aclose)
        has_keys = await keys.has_keys()
        check_bind(bind_host, has_keys, config.allow_unauthenticated)
        authenticator = Authenticator(
            keys,
            required=auth_required(bind_host, has_keys, config.allow_unauthenticated),
            on_when_keys_exist=True,
        )
        store = await open_store(config.database_url)
        writer = LedgerWriter(store, flush_interval=config.ledger_flush_interval)
        writer.start()
        closers.insert(0, store.aclose)
        closers.insert(0, writer.aclose)  # flush before the store closes
        budgets = None
        if policies.tenant_caps or policies.key_caps or policies.session_caps:
            budgets = BudgetManager(redis_url=config.policy.budgets.redis_url)
            closers.append(budgets.aclose)
        limiter = None
        if policies.tenant_limits or policies.key_limits or policies.target_limits:
            limiter = RateLimiter(redis_url=config.policy.rate_limits.redis_url)
            closers.append(limiter.aclose)
        cache = None
        response = config.policy.cache.response
        if response.enabled:
            cache = ResponseCache(
                max_entries=response.max_entries,
                default_ttl=response.ttl,
                redis_url=response.redis_url,
            )
            closers.append(cache.aclose)

        async def seed(scope: str) -> tuple[float, float]:
            return await _spent(store, scope)

        pipeline = CallPipeline(
            engine,
            prices=prices,
            policies=policies,
            ledger=writer,
            budgets=budgets,
            rate_limiter=limiter,
            response_cache=cache,
            seed_budget=seed,
        )
    except BaseException:
        for close in closers:
            await close()
        raise
    return Assembly(pipeline, authenticator, store, closers)


async def _spent(store: LedgerStore, scope: str) -> tuple[float, float]:
    """(today, this month) spent by a ``tenant:`` or ``key:`` scope, from the ledger."""
    kind, _, name = scope.partition(":")
    now = datetime.now(UTC)
    day = datetime(now.year, now.month, now.day, tzinfo=UTC).timestamp()
    month = datetime(now.year, now.month, 1, tzinfo=UTC).timestamp()

    async def since(start: float) -> float:
        if kind == "tenant":
            rows = await store.totals([], start, None, name)
        else:
            rows = [r for r in await store.totals(["key"], start, None, None) if r.key_id == name]
        return sum(r.cost_usd for r in rows)

    return await since(day), await since(month)
