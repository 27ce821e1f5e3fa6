"""Which tenant a request acts for or may see: one rule for calls and usage queries alike."""

from __future__ import annotations

from llmesh.services.core.caller import Caller

__all__ = ["acting_caller", "visible_tenant"]


def visible_tenant(caller: Caller, named: str | None) -> str | None:
    """The tenant a request acts for or may see.

    A caller holding an API key is held to its key's tenant, whatever the request names.
    Without keys (authentication off), the tenant the request names counts; None when it
    names none (a usage query then sees every tenant).
    """
    if caller.key_id:
        return caller.tenant
    return named or None


def acting_caller(caller: Caller, named: str | None) -> Caller:
    """Who a call acts for: `caller`, or without a key the tenant its ``tenant`` metadata
    names (the caller's own tenant when it names none)."""
    return Caller(visible_tenant(caller, named) or caller.tenant, caller.key_id)
