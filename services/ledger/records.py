"""The ledger's unit: one `UsageRecord` per call, written once when the call ends."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from llmesh.services.core.usage import CallStatus

__all__ = ["STATUSES", "UsageRecord"]

STATUSES = tuple(s.value for s in CallStatus)
"""What the ledger stores in its ``status`` column: the values of `CallStatus`."""


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
    """Every attempt (see `orchestrator.trail.attempt_json`), stored as JSON."""
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
    status: CallStatus = CallStatus.OK
    """How the call ended; stored as its string (``ok``, ``error`` or ``cancelled``)."""
    error_reason: str | None = None
    """The `Reason` value of a failed call."""
    usage_estimated: bool = False
    """True when some usage was estimated (e.g. a cut stream reported none)."""
    cache_hit: bool = False
    """True when llmesh's response cache served the call."""
    metadata: dict[str, str] = field(default_factory=dict)
    """Caller-supplied labels."""
    priority: str = ""
    """The priority tier the call ran at (``normal``); ``""`` in rows from before tiers."""
    downgraded_from: str = ""
    """The targets (comma-separated) a budget downgrade switched the call away from; empty
    when the call was not downgraded. `provider` and `model` name the one that served."""
    template: str = ""
    """The prompt template the call rendered (`llmesh.services.templates`); empty: none."""
    template_version: int = 0
    """The version of `template` the call rendered; 0 without a template."""
    trace_id: str = ""
    """The W3C trace id of the call (32 lower-case hex digits): its span's when tracing is
    on, else the one of the caller's ``traceparent``; empty when neither was there."""

    def __post_init__(self) -> None:
        if not isinstance(self.status, CallStatus):
            raise TypeError(f"status must be a CallStatus, got {self.status!r}")

    @property
    def failed(self) -> bool:
        """True for an errored or cancelled call."""
        return self.status is not CallStatus.OK
