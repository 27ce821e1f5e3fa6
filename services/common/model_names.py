"""Model names to ``(provider, model)``: the one rule chat routing and token counting share.

Aliases first, then ``provider/model`` of a configured provider (the model may hold
slashes), then a bare model name such as ``gpt-4o-mini``: it resolves when exactly one
provider lists it in its ``models``, and is MODEL_NOT_FOUND naming the candidates when
several do. Routes are resolved by their users (a route is a list of such names).
"""

from __future__ import annotations

from collections.abc import Mapping

from llmesh.services.common.config import ProviderConfig
from llmesh.services.common.errors import LlmeshError, Reason

__all__ = ["resolve_model"]


def resolve_model(
    name: str, providers: Mapping[str, ProviderConfig], aliases: Mapping[str, str]
) -> tuple[str, str]:
    """The ``(provider, model)`` a model name stands for; MODEL_NOT_FOUND otherwise."""
    seen = name
    name = aliases.get(name, name)
    provider, sep, model = name.partition("/")
    if sep and model and provider in providers:
        return provider, model
    listed = sorted(p.name for p in providers.values() if name in p.models)
    if len(listed) == 1:
        return listed[0], name
    if listed:
        candidates = [f"{p}/{name}" for p in listed]
        raise LlmeshError(
            Reason.MODEL_NOT_FOUND,
            f"model {seen!r} is listed by several providers; name one of: " + ", ".join(candidates),
            metadata={"model": seen, "candidates": ",".join(candidates)},
        )
    if not sep or not model or not provider:
        raise LlmeshError(
            Reason.MODEL_NOT_FOUND,
            f"model {seen!r} is neither an alias, a provider/model name, nor a model "
            "listed by a provider",
            metadata={"model": seen},
        )
    known = ", ".join(sorted(providers))
    raise LlmeshError(
        Reason.MODEL_NOT_FOUND,
        f"model {seen!r}: unknown provider {provider!r} (configured: {known})",
        metadata={"model": seen, "provider": provider},
    )
