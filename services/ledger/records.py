"""The ledger's unit: one `UsageRecord` per call, written once when the call ends."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.orchestrator.domain import Usage
    from services.orchestrator.trail import AttemptRecord

__all__ = ["STATUSES", "UsageRecord", "attempt_entry", "usage_entry"]

STATUSES = ("ok", "error", "cancelled")
"""The values of `UsageRecord.status`."""


@dataclass(slots=True)
class UsageRecord:
    """What one call consumed and cost, across all of its attempts."""

    request_id: str
    """The id llmesh gave the call; unique in the ledger."""
    ts: float = field(default_factory=time.time)
    """When the call started, in unix seconds."""
    tenant: str = ""
    """The caller's tenant."""
    key_id: str = ""
    """The id of the API key the caller used."""
    user: str = ""
    """The end user the caller named, if any."""
    session: str = ""
    """The conversation or session the caller named, if any."""
    route: str = ""
    """The model name the caller asked for (a route, alias or ``provider/model``)."""
    provider: str = ""
    """The provider that served the call; empty when no attempt reached one."""
    model: str = ""
    """The provider's model that served the call; empty when no attempt reached one."""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """Every attempt (see `attempt_entry`), stored as JSON."""
    input_tokens: int = 0
    """Uncached input tokens, summed over attempts (cache reads and writes excluded)."""
    output_tokens: int = 0
    """Output tokens, reasoning included, summed over attempts."""
    cache_read_tokens: int = 0
    """Input tokens read from the provider's prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens written to the provider's prompt cache."""
    reasoning_tokens: int = 0
    """Hidden reasoning tokens (a part of `output_tokens`)."""
    cost_usd: float = 0.0
    """What the call cost: every attempt's usage, priced."""
    cache_savings_usd: float = 0.0
    """What prompt-cache reads (or a response-cache hit) saved against full price."""
    ttft_ms: float | None = None
    """Milliseconds to the first token the caller received, if one came."""
    duration_ms: float = 0.0
    """Milliseconds from the call's start to its end."""
    status: str = "ok"
    """``ok``, ``error`` or ``cancelled``."""
    error_reason: str | None = None
    """The `Reason` value of a failed call."""
    usage_estimated: bool = False
    """True when some usage was estimated (e.g. a cut stream reported none)."""
    cache_hit: bool = False
    """True when llmesh's response cache served the call."""
    metadata: dict[str, str] = field(default_factory=dict)
    """Caller-supplied labels."""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def failed(self) -> bool:
        """True for an errored or cancelled call."""
        return self.status != "ok"

    def add_usage(self, usage: Usage) -> None:
        """Add one attempt's token counts to the totals (and its estimated flag)."""
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_read_tokens += usage.cache_read_tokens
        self.cache_write_tokens += usage.cache_write_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        self.usage_estimated = self.usage_estimated or usage.estimated


def usage_entry(usage: Usage | None) -> dict[str, Any] | None:
    """A `Usage` as a JSON-ready dict (None stays None)."""
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "estimated": usage.estimated,
    }


def attempt_entry(attempt: AttemptRecord) -> dict[str, Any]:
    """One attempt of the trail as a `UsageRecord.attempts` entry."""
    return {
        "target": attempt.target.name,
        "outcome": attempt.outcome.value,
        "reason": attempt.reason.value if attempt.reason is not None else None,
        "latency_ms": round(attempt.latency * 1000.0, 3),
        "ttft_ms": round(attempt.ttft * 1000.0, 3) if attempt.ttft is not None else None,
        "hedged": attempt.hedged,
        "retry": attempt.retry,
        "usage": usage_entry(attempt.usage),
    }
