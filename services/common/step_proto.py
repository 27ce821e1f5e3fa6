"""A route's step settings between the domain (`llmesh.services.common.step_settings`) and
the processor's protobuf rules, checked once for every service.

The orchestrator sends its routes' rules with these; the processor validates what any
client sends with them (errors name the request's field), and the orchestrator reads the
output rules the processor answers with them.
"""

from __future__ import annotations

import re

import regex

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.common.step_settings import (
    DETECTOR_GROUPS,
    DETECTORS,
    SCREEN_RULES,
    RedactionConfig,
    RedactionMode,
    ScreenAction,
    ScreenConfig,
)
from llmesh.v1 import processor_pb2

__all__ = [
    "invalid",
    "output_rules_to_proto",
    "rules_from_proto",
    "rules_to_proto",
    "screening_from_proto",
    "screening_to_proto",
]

_MODES = {
    processor_pb2.REDACTION_MODE_UNSPECIFIED: RedactionMode.PSEUDONYMIZE,
    processor_pb2.REDACTION_MODE_MASK: RedactionMode.MASK,
    processor_pb2.REDACTION_MODE_PSEUDONYMIZE: RedactionMode.PSEUDONYMIZE,
    processor_pb2.REDACTION_MODE_BLOCK: RedactionMode.BLOCK,
}
_MODE_TO_PROTO = {v: k for k, v in _MODES.items() if k}
_ACTIONS = {
    processor_pb2.SCREEN_ACTION_UNSPECIFIED: ScreenAction.FLAG,
    processor_pb2.SCREEN_ACTION_FLAG: ScreenAction.FLAG,
    processor_pb2.SCREEN_ACTION_BLOCK: ScreenAction.BLOCK,
    processor_pb2.SCREEN_ACTION_ROUTE: ScreenAction.ROUTE,
}
_ACTION_TO_PROTO = {v: k for k, v in _ACTIONS.items() if k}


def invalid(bad: list[FieldViolation]) -> LlmeshError:
    """INVALID_REQUEST listing each bad field."""
    summary = "; ".join(f"{v.field}: {v.description}" for v in bad)
    return LlmeshError(Reason.INVALID_REQUEST, f"invalid request: {summary}", violations=tuple(bad))


def screening_to_proto(screen: ScreenConfig) -> processor_pb2.ScreenRules:
    """The screen step's settings as sent to the processor (``route_to`` stays with the
    orchestrator: the processor only decides ``route``)."""
    return processor_pb2.ScreenRules(
        action=_ACTION_TO_PROTO[screen.action],
        threshold=screen.threshold,
        rules=screen.rules,
        classifier=screen.classifier,
    )


def screening_from_proto(
    rules: processor_pb2.ScreenRules, where: str = "screening"
) -> ScreenConfig:
    """Validate the screen step's rules; INVALID_REQUEST naming each bad field."""
    bad = [
        FieldViolation(f"{where}.rules[{i}]", f"unknown rule {name!r}")
        for i, name in enumerate(rules.rules)
        if name not in SCREEN_RULES
    ]
    if rules.action not in _ACTIONS:
        bad.append(FieldViolation(f"{where}.action", "unknown action"))
    if not 0 <= rules.threshold <= 1:
        bad.append(FieldViolation(f"{where}.threshold", "a number from 0 to 1"))
    if bad:
        raise invalid(bad)
    chosen = set(rules.rules)
    return ScreenConfig(
        _ACTIONS[rules.action],
        rules.threshold or ScreenConfig.threshold,
        rules=tuple(r for r in SCREEN_RULES if r in chosen) if chosen else SCREEN_RULES,
        classifier=rules.classifier,
    )


def rules_to_proto(rules: RedactionConfig) -> processor_pb2.RedactionRules:
    """The redact step's settings as sent to the processor."""
    return processor_pb2.RedactionRules(
        mode=_MODE_TO_PROTO[rules.mode],
        detectors=rules.detectors,
        patterns=[processor_pb2.RedactionPattern(name=n, regex=r) for n, r in rules.patterns],
        words=[processor_pb2.RedactionWords(name=n, words=w) for n, w in rules.words],
    )


def output_rules_to_proto(rules: RedactionConfig) -> processor_pb2.RedactionRules:
    """The output rules as sent to the processor and answered by it: always masking."""
    out = rules_to_proto(rules)
    out.mode = processor_pb2.REDACTION_MODE_MASK
    return out


def rules_from_proto(
    rules: processor_pb2.RedactionRules, where: str = "redaction", *, streamed: bool = False
) -> RedactionConfig:
    """Validate redaction rules; INVALID_REQUEST naming each bad field (under `where`).
    `streamed`: the rules mask a reply, so their patterns must also compile for partial
    matching (`llmesh.services.common.redaction.masking`), and the mode is always mask."""
    bad: list[FieldViolation] = []
    chosen: set[str] = set()
    for i, name in enumerate(rules.detectors):
        if name in DETECTOR_GROUPS:
            chosen.update(DETECTOR_GROUPS[name])
        elif name in DETECTORS:
            chosen.add(name)
        else:
            bad.append(FieldViolation(f"{where}.detectors[{i}]", f"unknown detector {name!r}"))
    patterns = []
    for i, p in enumerate(rules.patterns):
        try:
            if re.compile(p.regex).fullmatch("") is not None:
                raise re.error("matches the empty text")
            if streamed:
                regex.compile(p.regex, regex.V0)
        except (re.error, regex.error) as exc:
            bad.append(FieldViolation(f"{where}.patterns[{i}].regex", str(exc)))
        if not p.name:
            bad.append(FieldViolation(f"{where}.patterns[{i}].name", "is required"))
        patterns.append((p.name, p.regex))
    words = []
    for i, w in enumerate(rules.words):
        kept = tuple(x.strip() for x in w.words if x.strip())
        if not w.name or not kept:
            bad.append(FieldViolation(f"{where}.words[{i}]", "needs a name and words"))
        words.append((w.name, kept))
    if rules.mode not in _MODES:
        bad.append(FieldViolation(f"{where}.mode", "unknown mode"))
    if bad:
        raise invalid(bad)
    return RedactionConfig(
        RedactionMode.MASK if streamed else _MODES[rules.mode],
        tuple(d for d in DETECTORS if d in chosen) if chosen else DETECTORS,
        tuple(patterns),
        tuple(words),
    )
