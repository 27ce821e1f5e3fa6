"""Who makes a call."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """Who makes a call: the tenant and the API key (empty when auth is off)."""

    tenant: str = "default"
    key_id: str = ""
