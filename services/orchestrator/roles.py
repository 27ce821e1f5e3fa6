"""Role routing: a call may name a role (``role:summarize``) instead of a model.

The configuration maps role names to models (``roles:``), and a tenant may map them its own
way (``tenants.<tenant>.roles``, consulted first). `Roles.resolve` runs at the very top of
the call path, before routing, and replaces each ``role:<name>`` in the call's model and
fallbacks by the model it maps to; everything below sees an ordinary model name. A role
that neither the tenant nor the configuration maps is INVALID_REQUEST naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TypeVar

from llmesh.services.common.errors import invalid
from llmesh.services.core.call import Call

__all__ = ["ROLE_PREFIX", "Roles"]

ROLE_PREFIX = "role:"
"""What starts a model name that names a role."""

R = TypeVar("R")


class Roles:
    """The configured role mappings, global and per tenant."""

    def __init__(
        self,
        roles: Mapping[str, str] | None = None,
        tenants: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._roles = dict(roles or {})
        self._tenants = {t: dict(r) for t, r in (tenants or {}).items()}

    def resolve(self, call: Call[R]) -> Call[R]:
        """`call` with every role in its model and fallbacks replaced by its model."""
        if not call.model.startswith(ROLE_PREFIX) and not any(
            f.startswith(ROLE_PREFIX) for f in call.fallbacks
        ):
            return call
        tenant = call.caller.tenant
        return replace(
            call,
            model=self.model(call.model, tenant, "model"),
            fallbacks=tuple(
                self.model(f, tenant, f"fallbacks[{i}]") for i, f in enumerate(call.fallbacks)
            ),
        )

    def model(self, name: str, tenant: str, field: str = "model") -> str:
        """The model a name stands for: itself, or the model its role maps to for `tenant`."""
        if not name.startswith(ROLE_PREFIX):
            return name
        role = name[len(ROLE_PREFIX) :]
        found = self._tenants.get(tenant, {}).get(role) or self._roles.get(role)
        if found is None:
            known = sorted({*self._roles, *self._tenants.get(tenant, {})})
            listed = ", ".join(known) if known else "none"
            raise invalid(
                field,
                f"unknown role {role!r}: no model is configured for it (roles: {listed})",
            )
        return found
