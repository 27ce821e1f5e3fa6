"""Which tenant a request acts for or may see: one rule for calls and usage queries alike."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace

from llmesh.services.core.caller import Caller
from llmesh.services.core.priority import Priority, resolve_priority

__all__ = ["acting_caller", "call_priority", "viewed_tenant", "visible_tenant"]


def visible_tenant(caller: Caller, named: str | None) -> str | None:
    """The tenant a request acts for or may see.

    A caller holding an API key is held to its key's tenant, whatever the request names.
    Without keys (authentication off), the tenant the request names counts; None when it
    names none (a usage query then sees every tenant).
    """
    if caller.key_id:
        return caller.tenant
    return named or None


def viewed_tenant(caller: Caller, named: str | None, admin_tenants: Collection[str]) -> str | None:
    """The tenant whose usage and calls a query of `caller` may read; None: every tenant.

    As `visible_tenant`, except that a key of one of `admin_tenants` (``auth.admin_tenants``)
    sees every tenant, or the one the query names.
    """
    if caller.key_id and caller.tenant in admin_tenants:
        return named or None
    return visible_tenant(caller, named)


def acting_caller(caller: Caller, named: str | None) -> Caller:
    """Who a call acts for: `caller`, or without a key the tenant its ``tenant`` metadata
    names (the caller's own tenant when it names none)."""
    tenant = visible_tenant(caller, named) or caller.tenant
    return caller if tenant == caller.tenant else replace(caller, tenant=tenant)


def call_priority(
    caller: Caller, requested: Priority | None, tenant_priority: Mapping[str, Priority]
) -> Priority:
    """The tier a call of `caller` runs at: the one it asks for, else its key's default, else
    its tenant's (``resilience.queue.tenant_priority``), else normal; capped at the key's or
    token's ceiling."""
    return resolve_priority(
        requested, caller.default_priority, tenant_priority.get(caller.tenant), caller.max_priority
    )
