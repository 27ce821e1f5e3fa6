"""The ``resilience`` configuration section: breakers, retries, the retry budget and queues.

Plain settings, each default declared once here; the orchestrator's resilience code takes
them as they are (and re-exports them where it defines its breakers, retries and queues).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from llmesh.services.common.config_fields import FieldError, bounded, build, check_fields
from llmesh.services.common.errors import Reason
from llmesh.services.core.priority import Priority

__all__ = [
    "COUNTED_BY_DEFAULT",
    "BreakerSettings",
    "QueueSettings",
    "Resilience",
    "RetryBudgetSettings",
    "RetrySettings",
]

COUNTED_BY_DEFAULT: frozenset[Reason] = frozenset(
    {
        Reason.OVERLOADED,
        Reason.UPSTREAM_UNAVAILABLE,
        Reason.UPSTREAM_TIMEOUT,
        Reason.STREAM_INTERRUPTED,
        Reason.MALFORMED_RESPONSE,
    }
)
"""Failures that say the target itself is unhealthy. Rate limits (RATE_LIMITED) are left
out: they are per-key pacing with their own retry-after, not an outage; so are caller
errors, auth/config errors, content filters and the caller's own deadline or cancel."""


@dataclass(frozen=True)
class BreakerSettings:
    """How the breakers trip and recover, and where their state lives."""

    fail_max: int = bounded(5, ge=1)
    """Consecutive counted failures that open a breaker."""
    reset_timeout: float = bounded(30.0, ge=0)
    """Seconds a breaker stays open before a half-open trial; also the trial's lease."""
    success_threshold: int = bounded(1, ge=1)
    """Trial successes in half-open needed to close again."""
    counted_reasons: frozenset[Reason] = COUNTED_BY_DEFAULT
    """Failure reasons that count; `record_failure` ignores the others."""
    redis_url: str | None = None
    """Redis holding the state shared by orchestrator replicas; None keeps it in-process."""
    redis_namespace: str = "llmesh:breaker"
    """Key prefix in Redis; keys are ``<namespace>:<target>:pybreaker:<field>``."""
    redis_timeout: float = bounded(0.5, gt=0)
    """Seconds to wait for Redis per operation before letting the call through."""
    redis_backoff: float = bounded(1.0, ge=0)
    """Seconds Redis is skipped after it failed; meanwhile calls are let through."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class RetrySettings:
    """How often and how patiently one target is retried."""

    max_attempts: int = bounded(3, ge=1)
    """Tries of one target per call, the first included (1 disables retries)."""
    initial_backoff: float = bounded(0.25, ge=0)
    """Seconds before the first retry; doubles each time."""
    max_backoff: float = bounded(8.0, ge=0)
    """The longest backoff, in seconds."""
    jitter: float = bounded(0.25, ge=0)
    """Up to this many seconds of random jitter added to each backoff."""
    max_retry_after: float = bounded(30.0, ge=0)
    """Never wait longer than this for an upstream's retry-after; fail over instead."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class RetryBudgetSettings:
    """How many retries a target may take relative to its traffic."""

    ratio: float = bounded(0.2, ge=0)
    """Retries allowed per first attempt in the window."""
    window: float = bounded(10.0, gt=0)
    """Seconds the counts cover (sliding)."""
    min_retries: int = bounded(3, ge=0)
    """Retries allowed per window beyond the ratio, so low traffic can still retry."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class QueueSettings:
    """How many calls a target runs at once and how long others may wait."""

    max_concurrency: int = bounded(0, ge=0)
    """Calls in flight per target; 0 means unlimited (and no queue)."""
    max_queue: int = bounded(100, ge=0)
    """Calls that may wait per target; one more fails at once with QUEUE_FULL."""
    queue_timeout: float = bounded(30.0, ge=0)
    """Seconds a call may wait for a slot before failing with QUEUE_FULL."""
    tenant_priority: Mapping[str, Priority] = field(default_factory=dict)
    """Tenant -> the tier of its calls that name none and whose key sets no default."""

    def __post_init__(self) -> None:
        check_fields(self)


_BUDGET_PREFIX = "budget_"
"""The retry budget's keys sit in ``resilience.retry`` with this prefix (``budget_ratio``)."""


@dataclass(frozen=True)
class Resilience:
    """Breakers, retries, the retry budget and queues, as configured."""

    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    """``resilience.breaker``."""
    retry: RetrySettings = field(default_factory=RetrySettings)
    """``resilience.retry``, but for its ``budget_*`` keys."""
    budget: RetryBudgetSettings = field(default_factory=RetryBudgetSettings)
    """The ``budget_*`` keys of ``resilience.retry`` (``budget_ratio`` is `ratio`)."""
    queue: QueueSettings = field(default_factory=QueueSettings)
    """``resilience.queue``."""

    def __post_init__(self) -> None:
        check_fields(self)

    @classmethod
    def from_mapping(cls, raw: object) -> Resilience:
        """The settings from the section's YAML shape; a `FieldError` names the bad key."""
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise FieldError(
                "", f"expected a mapping with sections breaker, retry and queue, got {raw!r}"
            )
        unknown = set(raw) - {"breaker", "retry", "queue"}
        if unknown:
            raise FieldError("", f"unknown keys {sorted(map(str, unknown))}")
        retry_raw: Any = raw.get("retry") or {}
        if not isinstance(retry_raw, Mapping):
            raise FieldError("retry", f"expected a mapping, got {retry_raw!r}")
        budget_keys = {_BUDGET_PREFIX + f.name for f in fields(RetryBudgetSettings)}
        unknown = set(retry_raw) - {f.name for f in fields(RetrySettings)} - budget_keys
        if unknown:
            raise FieldError("retry", f"unknown keys {sorted(map(str, unknown))}")
        retry = {k: v for k, v in retry_raw.items() if k not in budget_keys}
        budget = {
            k.removeprefix(_BUDGET_PREFIX): v for k, v in retry_raw.items() if k in budget_keys
        }
        try:
            budget_settings = build(RetryBudgetSettings, budget)
        except FieldError as exc:
            raise FieldError(f"retry.{_BUDGET_PREFIX}{exc.key}", exc.problem) from None
        sections: dict[str, Any] = {"budget": budget_settings}
        for name, kind, body in (
            ("breaker", BreakerSettings, raw.get("breaker")),
            ("retry", RetrySettings, retry),
            ("queue", QueueSettings, raw.get("queue")),
        ):
            try:
                sections[name] = build(kind, body)
            except FieldError as exc:
                raise exc.under(name) from None
        return cls(**sections)
