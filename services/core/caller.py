"""Who makes a call."""

from __future__ import annotations

from dataclasses import dataclass

from llmesh.services.core.priority import Priority


@dataclass(frozen=True)
class Caller:
    """Who makes a call: the tenant and the API key (empty when auth is off)."""

    tenant: str = "default"
    key_id: str = ""
    default_priority: Priority | None = None
    """The tier the caller's API key gives calls that name none (None: no default)."""
    max_priority: Priority = Priority.CRITICAL
    """The highest tier the caller's key or token may use; a call asking above it is capped."""
