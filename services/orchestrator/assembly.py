"""Putting the orchestrator's call path together from configuration.

Builds (explicitly, at start-up, never at import) the price table, the usage ledger and its
batched writer, the API key store and authenticator, the router, and the layers of the call
path (rate limits, response cache, cost-capped routing, accounting, budgets) around the
engine; and closes them in order on shutdown (the ledger writer flushes last records first).
A new concern on every call is one layer module plus one line here.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from llmesh.services.auth import Authenticator, TokenVerifier, check_bind, open_key_store
from llmesh.services.auth.bind import auth_required
from llmesh.services.common.config import Config, ConfigError
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.handler import Handler, Layer
from llmesh.services.ledger import Instance, LedgerStore, LedgerWriter, PriceTable, open_store
from llmesh.services.orchestrator.accounting import Accounting
from llmesh.services.orchestrator.admission import BudgetManager, RateLimiter
from llmesh.services.orchestrator.embeddings import EmbeddingsHandler
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.layers import (
    Accounted,
    Budgeted,
    ByCallType,
    Cached,
    CostCapped,
    Processed,
    RateLimited,
    Structured,
    compose,
)
from llmesh.services.orchestrator.layers.budget import Scope, ScopeKind
from llmesh.services.orchestrator.observability import observe_state, observed_layer
from llmesh.services.orchestrator.path import CallPath
from llmesh.services.orchestrator.providers.base import TokenCounting
from llmesh.services.orchestrator.reload import make_router
from llmesh.services.orchestrator.response_cache import ResponseCache
from llmesh.services.orchestrator.roles import Roles
from llmesh.services.orchestrator.steps import ProcessorClient, StepObserver
from llmesh.services.telemetry import Labels, Metrics
from llmesh.services.templates import TemplateStore, open_template_store


@dataclass
class Assembly:
    """The call path and what it owns."""

    path: CallPath
    authenticator: Authenticator
    ledger_store: LedgerStore | None
    budgets: BudgetManager | None = None
    """The budgets' state (None when no budget is configured)."""
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    prices: PriceTable | None = None
    """The price table (list prices with the configured overrides)."""
    templates: TemplateStore | None = None
    """The prompt templates (in the ledger's database)."""
    writer: LedgerWriter | None = None
    """The ledger's batched writer (its instance names this process in the ledger)."""

    async def aclose(self) -> None:
        """Flush the ledger and close every store and connection, in order."""
        for close in self.closers:
            await close()


async def assemble(
    config: Config,
    engine: Orchestrator,
    *,
    bind_host: str,
    extra_layers: Sequence[Layer] = (),
    call_types: Mapping[type, Handler] | None = None,
    env: Mapping[str, str] | None = None,
    metrics: Metrics | None = None,
) -> Assembly:
    """Build the call path around `engine`; refuses an unauthenticated non-loopback bind.

    The layers, outermost first: the observing layer (metrics, the call log and the call's
    span, when any is on; `metrics` None records none), `extra_layers`,
    admission (rate limits), the response cache, processor steps (routes with ``steps``; the
    processor at ``processor.address``), cost-capped routing, accounting, budgets,
    structured-output validation;
    innermost, the handler of each call type (`engine` for chat, `EmbeddingsHandler` for
    embeddings, plus `call_types`). Accounting is outside the budget so that a reply the
    budget stops mid-stream is recorded with its reason. A layer whose policy is not
    configured is left out, so it costs nothing. `env` is where provider keys and base URLs
    are read (as `build_engine`'s; None for the process environment), and
    ``LLMESH_PROCESSOR_API_KEY``, the key the steps layer presents to a processor with keys.
    """
    policy = config.policy
    try:
        prices = PriceTable.defaults().with_overrides(
            {key: entry.as_mapping() for key, entry in policy.prices.items()}
        )
    except ValueError as exc:  # a new entry without input and output prices
        raise ConfigError(f"prices: {exc}") from exc
    closers: list[Callable[[], Awaitable[Any]]] = []
    path: CallPath  # the steps layer reads the router it holds (reloads replace it)
    try:
        keys = await open_key_store(config.database_url)
        closers.append(keys.aclose)
        has_keys = await keys.has_keys()
        tokens = TokenVerifier.from_config(config.jwt_issuers)
        check_bind(bind_host, has_keys or tokens is not None, config.allow_unauthenticated)
        authenticator = Authenticator(
            keys,
            required=auth_required(bind_host, has_keys, config.allow_unauthenticated),
            on_when_keys_exist=True,
            tokens=tokens,
        )
        store = await open_store(config.database_url)
        writer = LedgerWriter(
            store,
            flush_interval=config.ledger_flush_interval,
            instance=Instance(),
            lease=config.ledger_lease,
        )
        await writer.register()  # and close the calls a dead process left in flight
        writer.start()
        closers.insert(0, store.aclose)
        closers.insert(0, writer.aclose)  # flush before the store closes
        accounting = Accounting(prices, writer, engine.estimate)
        observed = observed_layer(config, metrics)
        layers: list[Layer] = [*([observed] if observed else []), *extra_layers]
        if metrics is not None:
            labels = Labels.from_config(config, metrics.settings.tenants)
            observe_state(metrics, labels, engine, writer)

        limits = policy.rate_limits
        if limits.tenants or limits.keys or limits.targets:
            limiter = RateLimiter(redis_url=limits.redis_url)
            closers.append(limiter.aclose)
            layers.append(
                partial(
                    RateLimited,
                    limiter=limiter,
                    tenants=limits.tenants,
                    keys=limits.keys,
                    targets=limits.targets,
                )
            )

        response = policy.cache.response
        if response.enabled:
            cache = ResponseCache(
                max_entries=response.max_entries,
                default_ttl=response.ttl,
                redis_url=response.redis_url,
            )
            closers.append(cache.aclose)
            layers.append(
                partial(
                    Cached,
                    cache=cache,
                    accounting=accounting,
                    default_ttl=response.ttl,
                    max_embedding_floats=response.max_embedding_floats,
                )
            )

        templates = open_template_store(config.database_url)
        closers.append(templates.aclose)
        steps = config.models.tenant_steps or any(
            r.steps is not None for r in config.routes.values()
        )
        if steps and not config.processor_address:
            raise ConfigError("routes (or tenants) with steps need processor.address")
        processor = None
        if config.processor_address:  # (connects on first use: a call with steps or template)
            processor = ProcessorClient(
                config.processor_address,
                config.tls.service("orchestrator"),
                api_key=(os.environ if env is None else env).get("LLMESH_PROCESSOR_API_KEY"),
            )
            closers.append(processor.aclose)
        layers.append(
            partial(
                Processed,
                steps_for=lambda name: path.router.steps(name),
                tenant_steps_for=lambda tenant: path.router.tenant_steps(tenant),
                client=processor,
                targets_for=lambda name: tuple(path.router.plan(name)[0]),
                catalog=lambda: path.router.catalog,
                mesh=lambda call, request_id, timeout: path.stream(
                    call, request_id=request_id, timeout=timeout
                ),
                counts=lambda name: _counting(engine, path.router.kind(name), name),
                observer=StepObserver(metrics),
                templates=templates,
            )
        )

        layers.append(partial(CostCapped, prices=prices))
        layers.append(partial(Accounted, accounting=accounting))
        caps = policy.budgets
        budgets = None
        if caps.tenants or caps.keys or caps.sessions:
            budgets = BudgetManager(redis_url=caps.redis_url)
            closers.append(budgets.aclose)

            async def spent_so_far(scope: Scope) -> tuple[float, float]:
                return await _spent(store, scope)

            layers.append(
                partial(
                    Budgeted,
                    budgets=budgets,
                    prices=prices,
                    accounting=accounting,
                    tenants=caps.tenants,
                    keys=caps.keys,
                    sessions=caps.sessions,
                    spent_so_far=spent_so_far,
                )
            )

        layers.append(Structured)
        embeddings = EmbeddingsHandler.from_config(config, engine.breakers, env=env)
        closers.append(embeddings.aclose)
        inner = ByCallType(
            {ChatRequest: engine, EmbeddingRequest: embeddings, **(call_types or {})}
        )
        router = make_router(config, engine.deployments, prices)
        roles = Roles(config.models.roles, config.models.tenant_roles)
        path = CallPath(router, compose(inner, layers), roles)
    except BaseException:
        for close in closers:
            await close()
        raise
    return Assembly(path, authenticator, store, budgets, closers, prices, templates, writer)


def _counting(engine: Orchestrator, kind: str, provider: str) -> TokenCounting | None:
    """The adapter of `provider` when its API counts input tokens: Anthropic's (an adapter
    of another kind asks no API: there is nothing to count with)."""
    adapter = engine.provider(provider) if kind == "anthropic" else None
    return adapter if isinstance(adapter, TokenCounting) else None


async def _spent(store: LedgerStore, scope: Scope) -> tuple[float, float]:
    """(today, this month) spent by a tenant's or a key's budget, from the ledger."""
    now = datetime.now(UTC)
    day = datetime(now.year, now.month, now.day, tzinfo=UTC).timestamp()
    month = datetime(now.year, now.month, 1, tzinfo=UTC).timestamp()

    async def since(start: float) -> float:
        if scope.kind is ScopeKind.TENANT:
            rows = await store.totals([], start, None, scope.name)
        else:
            rows = await store.totals(["key"], start, None, None)
            rows = [r for r in rows if r.key_id == scope.name]
        return sum(r.cost_usd for r in rows)

    return await since(day), await since(month)
