"""The ``Prepare`` RPC's work: a route's pre-call steps on a call's messages.

A request carrying a template renders it first (`llmesh.services.templates.Renderer`): its
messages go before the request's, every step runs on the result, and the version's default
parameters come back beside them. Then proto -> domain (`convert`), the steps on domain
messages (``screen`` scores them and changes nothing, ``redact`` rewrites texts), then the
request's own proto messages copied with only their texts changed, so every other field
(images, thinking blocks, cache breakpoints) goes back exactly as it came.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Collection, Sequence

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.common.media_settings import PartLimits
from llmesh.services.common.step_settings import (
    DETECTOR_GROUPS,
    DETECTORS,
    PRE_STEPS,
    SCREEN_RULES,
    RedactionConfig,
    RedactionMode,
    ScreenAction,
    ScreenConfig,
)
from llmesh.services.core.chat import Message, TextPart
from llmesh.services.processor.convert import messages_from_proto
from llmesh.services.processor.redact import Redactor, redact_messages
from llmesh.services.processor.screen import Screener
from llmesh.services.templates import Renderer
from llmesh.services.templates.convert import (
    parameters_to_proto,
    struct_to_dict,
    version_from_proto,
)
from llmesh.v1 import chat_pb2, processor_pb2, templates_pb2

__all__ = [
    "Preparer",
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
_TEMPLATE_ROLES = {
    "system": chat_pb2.ROLE_SYSTEM,
    "user": chat_pb2.ROLE_USER,
    "assistant": chat_pb2.ROLE_ASSISTANT,
}


def screening_to_proto(screen: ScreenConfig) -> processor_pb2.ScreenRules:
    """The screen step's settings as sent to the processor (``route_to`` stays with the
    orchestrator: the processor only decides ``route``)."""
    return processor_pb2.ScreenRules(
        action=_ACTION_TO_PROTO[screen.action],
        threshold=screen.threshold,
        rules=screen.rules,
        classifier=screen.classifier,
    )


def screening_from_proto(rules: processor_pb2.ScreenRules) -> ScreenConfig:
    """Validate the screen step's rules; INVALID_REQUEST naming each bad field."""
    bad = [
        FieldViolation(f"screening.rules[{i}]", f"unknown rule {name!r}")
        for i, name in enumerate(rules.rules)
        if name not in SCREEN_RULES
    ]
    if rules.action not in _ACTIONS:
        bad.append(FieldViolation("screening.action", "unknown action"))
    if not 0 <= rules.threshold <= 1:
        bad.append(FieldViolation("screening.threshold", "a number from 0 to 1"))
    if bad:
        raise _invalid(bad)
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


def rules_from_proto(rules: processor_pb2.RedactionRules) -> RedactionConfig:
    """Validate the redact step's rules; INVALID_REQUEST naming each bad field."""
    bad: list[FieldViolation] = []
    chosen: set[str] = set()
    for i, name in enumerate(rules.detectors):
        if name in DETECTOR_GROUPS:
            chosen.update(DETECTOR_GROUPS[name])
        elif name in DETECTORS:
            chosen.add(name)
        else:
            bad.append(FieldViolation(f"redaction.detectors[{i}]", f"unknown detector {name!r}"))
    patterns = []
    for i, p in enumerate(rules.patterns):
        try:
            if re.compile(p.regex).fullmatch("") is not None:
                raise re.error("matches the empty text")
        except re.error as exc:
            bad.append(FieldViolation(f"redaction.patterns[{i}].regex", str(exc)))
        if not p.name:
            bad.append(FieldViolation(f"redaction.patterns[{i}].name", "is required"))
        patterns.append((p.name, p.regex))
    words = []
    for i, w in enumerate(rules.words):
        kept = tuple(x.strip() for x in w.words if x.strip())
        if not w.name or not kept:
            bad.append(FieldViolation(f"redaction.words[{i}]", "needs a name and words"))
        words.append((w.name, kept))
    if rules.mode not in _MODES:
        bad.append(FieldViolation("redaction.mode", "unknown mode"))
    if bad:
        raise _invalid(bad)
    return RedactionConfig(
        _MODES[rules.mode],
        tuple(d for d in DETECTORS if d in chosen) if chosen else DETECTORS,
        tuple(patterns),
        tuple(words),
    )


class Preparer:
    """Runs pre-call steps; keeps the last rule sets' compiled redactors."""

    def __init__(
        self, limits: PartLimits, cached: int = 64, classifiers: Collection[str] = ()
    ) -> None:
        """`classifiers`: the dotted paths a screen step may load a classifier from."""
        self._limits = limits
        self._classifiers = frozenset(classifiers)
        self._redactors: OrderedDict[bytes, Redactor] = OrderedDict()
        self._screeners: OrderedDict[tuple[tuple[str, ...], str], Screener] = OrderedDict()
        self._cached = cached
        self._renderer = Renderer()

    def render(
        self, render: processor_pb2.TemplateRender
    ) -> tuple[list[chat_pb2.Message], templates_pb2.TemplateParameters]:
        """A template version rendered with its variables: the messages and the version's
        default parameters; INVALID_REQUEST naming a missing or undeclared variable or a text
        that does not render."""
        version = version_from_proto(render.template, trusted=True)
        if not version.name or not version.version:
            raise _invalid([FieldViolation("template.template", "a stored template version")])
        rendered = self._renderer.render(version, struct_to_dict(render.variables))
        messages = [
            chat_pb2.Message(role=_TEMPLATE_ROLES[role], content=text)
            for role, text in rendered.messages
        ]
        return messages, parameters_to_proto(rendered.parameters)

    def _screener(self, config: ScreenConfig) -> Screener:
        key = (config.rules, config.classifier)
        screener = self._screeners.get(key)
        if screener is None:
            screener = Screener(config.rules, config.classifier, self._classifiers)
            self._screeners[key] = screener
            if len(self._screeners) > self._cached:
                self._screeners.popitem(last=False)
        else:
            self._screeners.move_to_end(key)
        return screener

    def _redactor(self, rules: processor_pb2.RedactionRules) -> Redactor:
        key = rules.SerializeToString(deterministic=True)
        redactor = self._redactors.get(key)
        if redactor is None:
            redactor = Redactor(rules_from_proto(rules))
            self._redactors[key] = redactor
            if len(self._redactors) > self._cached:
                self._redactors.popitem(last=False)
        else:
            self._redactors.move_to_end(key)
        return redactor

    def prepare(self, request: processor_pb2.PrepareRequest) -> processor_pb2.PrepareResponse:
        """The request's messages through its steps, with the pseudonyms and decisions."""
        bad = [
            FieldViolation(f"steps[{i}]", f"unknown step {s!r}; one of {list(PRE_STEPS)}")
            for i, s in enumerate(request.steps)
            if s not in PRE_STEPS
        ]
        if bad:
            raise _invalid(bad)
        out = processor_pb2.PrepareResponse(messages=request.messages)
        if request.HasField("template"):
            started = time.perf_counter()
            rendered, parameters = self.render(request.template)
            del out.messages[:]
            out.messages.extend([*rendered, *request.messages])
            out.parameters.CopyFrom(parameters)
            t = request.template.template
            decision = out.decisions.add(step="template", decision=f"{t.name}@{t.version}")
            decision.duration.FromNanoseconds(int((time.perf_counter() - started) * 1e9))
        if not request.steps:
            return out
        messages = messages_from_proto(out.messages, self._limits)
        for step in request.steps:  # `screen`, `redact`; `fit` runs after, in the servicer
            if step == "fit":
                continue
            started = time.perf_counter()
            if step == "screen":
                decision = self._screen(request.screening, messages, out)
            else:
                redaction = self._redactor(request.redaction).start()
                redacted = redact_messages(messages, redaction)
                mode = redaction.redactor.mode
                decision = out.decisions.add(
                    step=step, decision=mode.value if redaction.counts else "clean"
                )
                decision.counts.update(redaction.counts)
                for value, placeholder in redaction.placeholders.items():
                    out.pseudonyms.add(placeholder=placeholder, value=value)
                _write_texts(out.messages, messages, redacted)
                messages = redacted
            decision.duration.FromNanoseconds(int((time.perf_counter() - started) * 1e9))
        return out

    def _screen(
        self,
        rules: processor_pb2.ScreenRules,
        messages: Sequence[Message],
        out: processor_pb2.PrepareResponse,
    ) -> processor_pb2.StepDecision:
        config = screening_from_proto(rules)
        screening = self._screener(config).screen(messages)
        hit = screening.score >= config.threshold
        if hit and config.action is ScreenAction.BLOCK:
            named = ", ".join(screening.rules)
            raise LlmeshError(
                Reason.INVALID_REQUEST,
                f"the input looks like a prompt injection (score {screening.score:.2f}, "
                f"threshold {config.threshold:.2f}; rules {named}); screening in block mode "
                "refuses it",
                metadata={"step": "screen", "rules": ",".join(screening.rules)},
            )
        decision: processor_pb2.StepDecision = out.decisions.add(
            step="screen",
            decision=config.action.value if hit else "clean",
            score=screening.score,
            rules=screening.rules,
        )
        return decision


def _write_texts(
    out: Sequence[chat_pb2.Message], before: Sequence[Message], after: Sequence[Message]
) -> None:
    """Set the changed texts of `after` on the proto copies `out`."""
    for pm, old, new in zip(out, before, after, strict=True):
        if new is old:
            continue
        pm.content = new.content
        for pp, part in zip(pm.parts, new.parts, strict=True):
            if isinstance(part, TextPart):
                pp.text = part.text
        for pc, call in zip(pm.tool_calls, new.tool_calls, strict=True):
            pc.arguments = call.arguments


def _invalid(bad: list[FieldViolation]) -> LlmeshError:
    summary = "; ".join(f"{v.field}: {v.description}" for v in bad)
    return LlmeshError(Reason.INVALID_REQUEST, f"invalid request: {summary}", violations=tuple(bad))
