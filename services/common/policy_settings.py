"""The call policy sections: ``budgets``, ``rate_limits``, ``cache`` and ``prices``.

Plain settings, each default declared once here; the orchestrator's admission code, the
response cache and the price table take them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from llmesh.services.common.config_fields import FieldError, bounded, build, check_fields

__all__ = [
    "BudgetCaps",
    "BudgetsConfig",
    "CacheConfig",
    "Limit",
    "PolicyConfig",
    "PriceOverride",
    "RateLimitsConfig",
    "ResponseCacheConfig",
]


@dataclass(frozen=True)
class BudgetCaps:
    """A scope's spending caps in USD; None leaves that period uncapped."""

    daily_usd: float | None = bounded(None, ge=0)
    """Cap per UTC calendar day."""
    monthly_usd: float | None = bounded(None, ge=0)
    """Cap per UTC calendar month."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class Limit:
    """The rates one subject may use; None leaves that dimension unlimited."""

    requests_per_minute: float | None = bounded(None, ge=1)
    """Requests per minute, and the burst a full bucket allows; at least 1 when set."""
    tokens_per_minute: float | None = bounded(None, gt=0)
    """Tokens per minute (prompt plus expected completion), and the burst; positive."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class BudgetsConfig:
    """``budgets``: USD caps per tenant, key and session (``"*"``: every tenant / key)."""

    tenants: Mapping[str, BudgetCaps] = field(default_factory=dict)
    """Caps by tenant."""
    keys: Mapping[str, BudgetCaps] = field(default_factory=dict)
    """Caps by API key id."""
    sessions: BudgetCaps | None = None
    """Caps per ``metadata.session``; None for none."""
    redis_url: str | None = None
    """Redis sharing reservations between replicas; None keeps them in-process."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class RateLimitsConfig:
    """``rate_limits``: token buckets per tenant, key and target (``"*"``: every one)."""

    tenants: Mapping[str, Limit] = field(default_factory=dict)
    """Limits by tenant."""
    keys: Mapping[str, Limit] = field(default_factory=dict)
    """Limits by API key id."""
    targets: Mapping[str, Limit] = field(default_factory=dict)
    """Limits by upstream ``provider/model`` target."""
    redis_url: str | None = None
    """Redis sharing the buckets between replicas; None keeps them in-process."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class ResponseCacheConfig:
    """``cache.response``: the exact-match response cache."""

    enabled: bool = True
    """Whether replies are cached at all."""
    max_entries: int = bounded(1000, ge=1)
    """Replies kept in process (least recently used go first)."""
    ttl: float = bounded(300.0, gt=0)
    """Seconds a reply stays cached when the request sets no TTL."""
    redis_url: str | None = None
    """Redis holding the cache shared between replicas; None keeps it in-process."""
    max_embedding_floats: int = bounded(65536, ge=0)
    """The most floats (over all its vectors) an embeddings reply may hold to be stored;
    larger replies are served but not cached. 0 caches no embeddings."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class CacheConfig:
    """``cache``: the caches llmesh keeps."""

    response: ResponseCacheConfig = field(default_factory=ResponseCacheConfig)
    """The exact-match response cache."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class PriceOverride:
    """A ``prices`` entry: the fields of the ledger's `Price` it sets (None: left as is).

    A key the shipped table lacks must set `input` and `output`; the price table checks
    that when it applies the overrides.
    """

    input: float | None = bounded(None, ge=0)
    """USD per million uncached input tokens."""
    output: float | None = bounded(None, ge=0)
    """USD per million output tokens."""
    cache_read: float | None = bounded(None, ge=0)
    """USD per million input tokens read from the prompt cache."""
    cache_write_5m: float | None = bounded(None, ge=0)
    """USD per million input tokens written to a 5-minute prompt cache."""
    cache_write_1h: float | None = bounded(None, ge=0)
    """USD per million input tokens written to a 1-hour prompt cache."""
    reasoning: float | None = bounded(None, ge=0)
    """USD per million reasoning tokens, when billed apart from output."""
    max_output_tokens: int | None = bounded(None, ge=1)
    """The model's published output limit in tokens."""
    batch: float | None = bounded(None, ge=0)
    """The share of every rate billed for a call through the provider's batch API (0.5)."""

    def __post_init__(self) -> None:
        check_fields(self)

    def as_mapping(self) -> dict[str, float | int]:
        """The fields set, by name (what `PriceTable.with_overrides` takes)."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True)
class PolicyConfig:
    """The top-level ``budgets``, ``rate_limits``, ``cache`` and ``prices`` sections."""

    budgets: BudgetsConfig = field(default_factory=BudgetsConfig)
    """Spending caps."""
    rate_limits: RateLimitsConfig = field(default_factory=RateLimitsConfig)
    """Token buckets."""
    cache: CacheConfig = field(default_factory=CacheConfig)
    """The response cache."""
    prices: Mapping[str, PriceOverride] = field(default_factory=dict)
    """Price overrides by ``provider/model`` or ``provider/*`` key."""

    def __post_init__(self) -> None:
        check_fields(self)
        for key in self.prices:
            provider, slash, model = key.partition("/")
            if not (provider and slash and model):
                raise FieldError(f"prices.{key}", "expected a 'provider/model' or 'provider/*' key")

    @classmethod
    def from_mapping(cls, raw: object) -> PolicyConfig:
        """The sections from a mapping of top-level keys; a `FieldError` names the bad key."""
        return build(cls, raw)
