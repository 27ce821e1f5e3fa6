"""Counting a chat call's input tokens the way its target does (`CountInputTokens`).

The call is routed as it would be sent (its route's targets, then its fallbacks; a beta
feature the route does not allow is refused), and the first target whose adapter counts
exactly (`TokenCounting`: Anthropic's count_tokens endpoint) counts it. Nothing is
generated, billed or recorded. None means no target counts exactly: the caller estimates
instead (the processor's CountTokens).
"""

from __future__ import annotations

from collections.abc import Callable

from llmesh.services.core.call import ChatCall
from llmesh.services.core.target import Target
from llmesh.services.orchestrator.path import CallPath
from llmesh.services.orchestrator.providers.base import Provider, TokenCounting

__all__ = ["count_input_tokens"]


async def count_input_tokens(
    path: CallPath,
    provider: Callable[[str], Provider | None],
    call: ChatCall,
    *,
    timeout: float | None,
) -> tuple[int, Target] | None:
    """The first exact count among `call`'s targets and the target that gave it, or None;
    `provider` finds a target's adapter. Raises `LlmeshError` as routing or the provider
    does (an unknown model, a refused request)."""
    routed = path.route(call, timeout=timeout)
    for target in routed.targets:
        adapter = provider(target.provider)
        if not isinstance(adapter, TokenCounting):
            continue
        tokens = await adapter.count_tokens(target.model, call.request, timeout=timeout)
        if tokens is not None:
            return tokens, target
    return None
