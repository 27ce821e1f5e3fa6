"""Which targets' models can serve a chat call: what the call needs against what each model
declares (`model_catalog`).

A call needs ``vision`` for an image part, ``documents`` for a document part, ``audio`` for
an audio part, ``tools`` when it offers tools, ``json_schema`` for a JSON schema response
format, ``reasoning`` for a reasoning effort or a thinking budget, ``max_output_tokens`` at
least its ``max_tokens``, and a ``context_window`` holding its estimated prompt (about four
characters a token, media as usage estimates count them) plus ``max_tokens``. A target
whose model is known to lack one is skipped before anything is sent: an attempt SKIPPED for
INVALID_REQUEST whose detail names the capability. When no target is left the call fails
INVALID_REQUEST naming the capability and the targets, as for options an adapter lacks
(`capabilities`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.common.model_settings import ModelCapabilities
from llmesh.services.core.chat import (
    AudioPart,
    ChatRequest,
    DocumentPart,
    ImagePart,
    ReasoningEffort,
    ResponseFormatType,
)
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome, Trail
from llmesh.services.orchestrator.estimate import estimate_input_tokens
from llmesh.services.orchestrator.model_catalog import ModelCatalog

__all__ = ["able_targets", "fitting_targets", "lacking", "needs"]

_PARTS = (("vision", ImagePart), ("documents", DocumentPart), ("audio", AudioPart))
"""The capability each kind of content part needs."""


def needs(request: ChatRequest, kind: str = "") -> tuple[str, ...]:
    """The yes/no capabilities `request` needs at a provider of `kind`, in a fixed order.

    Reasoning is asked for in each wire format's own way, and the other's field is not sent:
    a thinking budget at an ``anthropic`` provider, a reasoning effort at any other (either,
    for an unknown kind)."""
    out: list[str] = []
    if any(m.parts for m in request.messages):
        kinds = {type(p) for m in request.messages for p in m.parts}
        out.extend(f for f, part in _PARTS if part in kinds)
    if request.tools:
        out.append("tools")
    if (
        request.response_format is not None
        and request.response_format.type is ResponseFormatType.JSON_SCHEMA
    ):
        out.append("json_schema")
    effort = request.reasoning_effort is not ReasoningEffort.UNSPECIFIED
    thinking = request.thinking_budget_tokens is not None
    if thinking if kind == "anthropic" else effort or (thinking and not kind):
        out.append("reasoning")
    return tuple(out)


def lacking(
    caps: ModelCapabilities,
    features: Sequence[str],
    request: ChatRequest,
    prompt: Callable[[], int],
) -> tuple[str, str] | None:
    """The first capability `caps` is known to lack for `request` (whose prompt `prompt()`
    estimates in tokens, asked only when needed), as (capability, detail); None when it may
    serve it."""
    for feature in features:
        if getattr(caps, feature) is False:
            return feature, f"lacks {feature}"
    out = request.max_tokens or 0
    if caps.max_output_tokens is not None and out > caps.max_output_tokens:
        return "max_output_tokens", (
            f"max_tokens {out} is over its max_output_tokens {caps.max_output_tokens}"
        )
    if caps.context_window is not None and (tokens := prompt()) + out > caps.context_window:
        return "context_window", (
            f"about {tokens} prompt tokens + {out} max_tokens exceed its context_window "
            f"{caps.context_window}"
        )
    return None


def _no_prompt() -> int:
    return 0


def able_targets(
    targets: Sequence[Target],
    catalog: ModelCatalog,
    request: ChatRequest,
    kinds: Mapping[str, str] | None = None,
) -> list[Target]:
    """The targets whose models can serve `request`, in order, recording nothing."""
    if not _limited(targets, catalog):
        return list(targets)
    prompt = _once(estimate_input_tokens, request)
    kinds = kinds or {}
    return [
        t
        for t in targets
        if lacking(
            catalog.capabilities(t.provider, t.model),
            needs(request, kinds.get(t.provider, "")),
            request,
            prompt,
        )
        is None
    ]


def fitting_targets(
    targets: Sequence[Target],
    catalog: ModelCatalog,
    request: ChatRequest,
    trail: Trail,
    clock: Callable[[], float],
    kinds: Mapping[str, str] | None = None,
    *,
    fitted: bool = False,
) -> list[Target]:
    """The targets whose models can serve `request`, in order; each other is recorded in
    `trail` as skipped with the capability it lacks. Raises INVALID_REQUEST when none is
    left. `kinds` gives each provider's kind (how it is asked for reasoning); `fitted`: the
    route's ``fit`` step fits the prompt to the window, so only max_tokens is held to it."""
    if not _limited(targets, catalog):
        return list(targets)  # no target's model declares a limit: all can serve the call
    prompt = _no_prompt if fitted else _once(estimate_input_tokens, request)
    kinds = kinds or {}
    kept: list[Target] = []
    wanted: dict[str, tuple[str, ...]] = {}
    missing: dict[str, list[str]] = {}
    for target in targets:
        kind = kinds.get(target.provider, "")
        features = wanted.get(kind)
        if features is None:
            features = wanted[kind] = needs(request, kind)
        caps = catalog.capabilities(target.provider, target.model)
        found = lacking(caps, features, request, prompt)
        if found is None:
            kept.append(target)
            continue
        capability, detail = found
        now = clock()
        record = trail.add(AttemptRecord(target, now, detail=detail))
        record.finish(Outcome.SKIPPED, now, Reason.INVALID_REQUEST)
        names = missing.setdefault(capability, [])
        if target.name not in names:
            names.append(target.name)
    if kept or not targets:
        return kept
    violations = tuple(
        FieldViolation(
            _field(request, capability), f"needs {capability}, which {', '.join(names)} lacks"
        )
        for capability, names in missing.items()
    )
    raise LlmeshError(
        Reason.INVALID_REQUEST,
        "no target can serve this call: "
        + "; ".join(
            f"{', '.join(names)} lacks {capability}" for capability, names in missing.items()
        ),
        violations=violations,
        metadata={"capability": ",".join(missing)},
    )


_PART_FIELDS = {"vision": (ImagePart, "image"), "documents": (DocumentPart, "document")}
_PART_FIELDS["audio"] = (AudioPart, "input_audio")
_FIELDS = {
    "tools": "tools",
    "json_schema": "response_format",
    "max_output_tokens": "max_tokens",
    "context_window": "messages",
}


def _field(request: ChatRequest, capability: str) -> str:
    """The request field that needs `capability`: the first part of its kind, or the field
    asking for it (e.g. ``messages[0].parts[1].image``)."""
    if capability in _PART_FIELDS:
        kind, name = _PART_FIELDS[capability]
        for i, m in enumerate(request.messages):
            for k, part in enumerate(m.parts):
                if isinstance(part, kind):
                    return f"messages[{i}].parts[{k}].{name}"
    if capability == "reasoning":
        return (
            "reasoning_effort"
            if request.reasoning_effort is not ReasoningEffort.UNSPECIFIED
            else "thinking_budget_tokens"
        )
    return _FIELDS.get(capability, "model")


def _limited(targets: Sequence[Target], catalog: ModelCatalog) -> bool:
    """Whether any of `targets` has a model that declares a capability or a limit (a loop,
    not `any` over a generator: it runs twice a call, mostly for one target or none)."""
    for target in targets:
        if catalog.limits(target.provider, target.model):
            break
    else:
        return False
    return True


def _once(estimate: Callable[[ChatRequest], int], request: ChatRequest) -> Callable[[], int]:
    """`estimate(request)`, worked out at the first call only."""
    found: list[int] = []

    def prompt() -> int:
        if not found:
            found.append(estimate(request))
        return found[0]

    return prompt
