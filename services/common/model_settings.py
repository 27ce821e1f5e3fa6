"""Configuration of what models can do and of roles: the ``capabilities``, ``roles`` and
``tenants`` top-level keys.

``capabilities`` overrides the bundled catalog per ``provider/model`` (or ``provider/*`` for
every model of a provider); a field left out keeps the catalog's value. ``roles`` maps a role
name (what a caller puts after ``role:`` in ``model``) to a model, route or alias, and
``tenants.<tenant>.roles`` overrides that per tenant. ``tenants.<tenant>.steps`` are processor
steps (the schema of ``routes.<name>.steps``) for every call the tenant makes, combined with
the route's (`llmesh.services.common.step_merge`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmesh.services.common.config_fields import ConfigError, FieldError, build, check_fields
from llmesh.services.common.step_settings import StepsConfig, parse_steps

__all__ = ["MODEL_SECTIONS", "ModelCapabilities", "ModelSettings", "parse_model_settings"]

MODEL_SECTIONS = ("capabilities", "roles", "tenants")
"""The top-level keys this module reads."""


@dataclass(frozen=True)
class ModelCapabilities:
    """What one model accepts; None means unknown, which routing treats as able."""

    tools: bool | None = None
    """Takes tool definitions and returns tool calls."""
    vision: bool | None = None
    """Takes image parts."""
    documents: bool | None = None
    """Takes PDF document parts."""
    json_schema: bool | None = None
    """Honours a JSON schema response format natively."""
    reasoning: bool | None = None
    """Takes a reasoning effort or a thinking budget."""
    audio: bool | None = None
    """Takes audio input parts."""
    context_window: int | None = None
    """Tokens of prompt plus reply the model holds."""
    max_output_tokens: int | None = None
    """The most tokens one reply may have."""

    def __post_init__(self) -> None:
        check_fields(self)
        for key in ("context_window", "max_output_tokens"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise FieldError(key, f"expected an integer >= 1, got {value!r}")

    def over(self, base: ModelCapabilities) -> ModelCapabilities:
        """These capabilities where set, `base`'s elsewhere."""
        return ModelCapabilities(
            **{
                name: mine if mine is not None else getattr(base, name)
                for name, mine in vars(self).items()
            }
        )


@dataclass(frozen=True)
class ModelSettings:
    """Capability overrides and role mappings."""

    capabilities: Mapping[str, ModelCapabilities] = field(default_factory=dict)
    """Per ``provider/model`` or ``provider/*``: overrides of the bundled catalog."""
    roles: Mapping[str, str] = field(default_factory=dict)
    """Role name -> model name (a route, alias or ``provider/model``)."""
    tenant_roles: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Tenant -> its own role mappings, consulted before `roles`."""
    tenant_steps: Mapping[str, StepsConfig] = field(default_factory=dict)
    """Tenant -> processor steps for every call it makes, combined with the route's."""


def _roles(raw: object, key: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key}: expected a mapping of role name to model, got {raw!r}")
    out = {}
    for name, model in raw.items():
        if not isinstance(name, str) or not name or ":" in name:
            raise ConfigError(f"{key}: a role name must be a non-empty string without ':'")
        if not isinstance(model, str) or not model or model.startswith("role:"):
            raise ConfigError(f"{key}.{name}: expected a model name, got {model!r}")
        out[name] = model
    return out


def parse_model_settings(raw: Mapping[str, Any]) -> ModelSettings:
    """The ``capabilities``, ``roles`` and ``tenants`` sections of the configuration file."""
    caps_raw = raw.get("capabilities") or {}
    if not isinstance(caps_raw, Mapping):
        raise ConfigError("capabilities: expected a mapping of provider/model to capabilities")
    capabilities = {}
    for name, body in caps_raw.items():
        if not isinstance(name, str) or "/" not in name:
            raise ConfigError(f"capabilities.{name}: expected a provider/model name")
        try:
            capabilities[name] = build(ModelCapabilities, body or {})
        except FieldError as exc:
            raise ConfigError(str(exc.under(f"capabilities.{name}"))) from None
    tenants_raw = raw.get("tenants") or {}
    if not isinstance(tenants_raw, Mapping):
        raise ConfigError("tenants: expected a mapping of tenant name to settings")
    tenant_roles = {}
    tenant_steps = {}
    for tenant, body in tenants_raw.items():
        body = body or {}
        if not isinstance(body, Mapping) or set(body) - {"roles", "steps"}:
            raise ConfigError(f"tenants.{tenant}: expected a mapping with roles, steps")
        tenant_roles[str(tenant)] = _roles(body.get("roles"), f"tenants.{tenant}.roles")
        steps = parse_steps(str(tenant), body.get("steps"), f"tenants.{tenant}.steps")
        if steps is not None:
            tenant_steps[str(tenant)] = steps
    return ModelSettings(
        capabilities, _roles(raw.get("roles"), "roles"), tenant_roles, tenant_steps
    )
