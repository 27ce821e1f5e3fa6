"""Which targets can honour what a chat request asks: none of its fields is silently lost.

A request may ask for optional features (`ChatRequest.options`: penalties, logit bias, a
service tier, logprobs) that only some providers' APIs honour; each adapter lists those it honours
(`Provider.options`, declared beside its wire format). A target whose adapter lacks one is
skipped before anything is sent (an attempt SKIPPED for INVALID_REQUEST in the trail), and
when no target is left the call fails INVALID_REQUEST naming the fields, with OpenAI's
``unsupported_parameter`` code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from llmesh.services.common.errors import OPENAI_CODE, FieldViolation, LlmeshError, Reason
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome, Trail
from llmesh.services.orchestrator.providers.base import Provider

__all__ = ["UNSUPPORTED_PARAMETER", "capable_targets"]

UNSUPPORTED_PARAMETER = "unsupported_parameter"
"""OpenAI's error code for a field the target cannot take."""


def capable_targets(
    targets: Sequence[Target],
    providers: Mapping[str, Provider],
    request: ChatRequest,
    trail: Trail,
    clock: Callable[[], float],
) -> list[Target]:
    """The targets whose adapters honour every optional feature `request` asks for, in order;
    the others are recorded as skipped. Raises INVALID_REQUEST when none is left.

    A target whose provider is not available is kept: it fails on its own, as before.
    """
    wanted = request.options()
    if not wanted:
        return list(targets)
    kept: list[Target] = []
    lacking: dict[str, list[str]] = {}
    for target in targets:
        provider = providers.get(target.provider)
        missing = [] if provider is None else [f for f in wanted if f not in provider.options]
        if not missing:
            kept.append(target)
            continue
        now = clock()
        trail.add(AttemptRecord(target, now)).finish(Outcome.SKIPPED, now, Reason.INVALID_REQUEST)
        for feature in missing:
            names = lacking.setdefault(wanted[feature], [])
            if target.name not in names:
                names.append(target.name)
    if kept:
        return kept
    violations = tuple(
        FieldViolation(param, f"is not supported by {', '.join(names)}")
        for param, names in lacking.items()
    )
    raise LlmeshError(
        Reason.INVALID_REQUEST,
        "; ".join(f"{v.field} {v.description}" for v in violations),
        violations=violations,
        metadata={OPENAI_CODE: UNSUPPORTED_PARAMETER},
    )
