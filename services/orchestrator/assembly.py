"""Putting the orchestrator's call pipeline together from configuration.

Builds (explicitly, at start-up, never at import) the price table, the usage ledger and its
batched writer, the API key store and authenticator, budgets, rate limits and the response
cache, and closes them in order on shutdown (the ledger writer flushes last records first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.auth import Authenticator, check_bind, open_key_store
from services.auth.bind import auth_required
from services.common.config import Config, ConfigError
from services.ledger import LedgerStore, LedgerWriter, PriceTable, open_store
from services.orchestrator.admission import BudgetCaps, BudgetManager, Limit, RateLimiter
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


def _section(policy: Mapping[str, Mapping[str, Any]], name: str) -> dict[str, Any]:
    raw = policy.get(name) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: expected a mapping")
    return dict(raw)


def _table(raw: Any, kind: type[Any], where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of name -> settings")
    out = {}
    for name, body in raw.items():
        try:
            out[str(name)] = kind(**dict(body or {}))
        except TypeError as exc:
            raise ConfigError(f"{where}.{name}: {exc}") from exc
    return out


def policies_from_config(
    policy: Mapping[str, Mapping[str, Any]],
) -> tuple[Policies, dict[str, Any]]:
    """The call policies, and the backing settings (redis URLs, cache sizes), validated."""
    budgets = _section(policy, "budgets")
    limits = _section(policy, "rate_limits")
    cache = _section(policy, "cache")
    for name, raw, allowed in (
        ("budgets", budgets, {"tenants", "keys", "sessions", "redis_url"}),
        ("rate_limits", limits, {"tenants", "keys", "targets", "redis_url"}),
        ("cache", cache, {"response"}),
    ):
        unknown = set(raw) - allowed
        if unknown:
            raise ConfigError(f"{name}: unknown keys {sorted(unknown)}")
    response = dict(cache.get("response") or {})
    unknown = set(response) - {"enabled", "max_entries", "ttl", "redis_url"}
    if unknown:
        raise ConfigError(f"cache.response: unknown keys {sorted(unknown)}")
    sessions = budgets.get("sessions")
    policies = Policies(
        tenant_limits=_table(limits.get("tenants"), Limit, "rate_limits.tenants"),
        key_limits=_table(limits.get("keys"), Limit, "rate_limits.keys"),
        target_limits=_table(limits.get("targets"), Limit, "rate_limits.targets"),
        tenant_caps=_table(budgets.get("tenants"), BudgetCaps, "budgets.tenants"),
        key_caps=_table(budgets.get("keys"), BudgetCaps, "budgets.keys"),
        session_caps=BudgetCaps(**dict(sessions)) if sessions else None,
        response_cache_ttl=float(response.get("ttl", 300.0)),
    )
    backing = {
        "budgets_redis": budgets.get("redis_url"),
        "limits_redis": limits.get("redis_url"),
        "cache_enabled": bool(response.get("enabled", True)),
        "cache_entries": int(response.get("max_entries", 1000)),
        "cache_redis": response.get("redis_url"),
    }
    return policies, backing


async def assemble(config: Config, engine: Orchestrator, *, bind_host: str) -> Assembly:
    """Build the pipeline for `engine`; refuses an unauthenticated non-loopback bind."""
    policies, backing = policies_from_config(config.policy)
    prices = PriceTable.defaults().with_overrides(_section(config.policy, "prices"))
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
            budgets = BudgetManager(redis_url=backing["budgets_redis"])
            closers.append(budgets.aclose)
        limiter = None
        if policies.tenant_limits or policies.key_limits or policies.target_limits:
            limiter = RateLimiter(redis_url=backing["limits_redis"])
            closers.append(limiter.aclose)
        cache = None
        if backing["cache_enabled"]:
            cache = ResponseCache(
                max_entries=backing["cache_entries"],
                default_ttl=policies.response_cache_ttl,
                redis_url=backing["cache_redis"],
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
