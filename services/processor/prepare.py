"""The ``Prepare`` RPC's work: a route's pre-call steps on a call's messages; and the direct
``Redact``, ``Restore`` and ``Screen`` RPCs, on the same code paths.

A request carrying a template renders it first (`llmesh.services.templates.Renderer`): its
messages go before the request's, every step runs on the result, and the version's default
parameters come back beside them. Then proto -> domain (`convert`), the steps on domain
messages (``screen`` scores them and changes nothing, ``redact`` rewrites texts), then the
request's own proto messages copied with only their texts changed, so every other field
(images, thinking blocks, cache breakpoints) goes back exactly as it came.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Collection, Sequence

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.common.media_settings import PartLimits
from llmesh.services.common.redaction import PLACEHOLDER, Restorer, json_escaped
from llmesh.services.common.step_proto import (
    invalid,
    output_rules_to_proto,
    rules_from_proto,
    rules_to_proto,
    screening_from_proto,
    screening_to_proto,
)
from llmesh.services.common.step_settings import PRE_STEPS, ScreenAction, ScreenConfig
from llmesh.services.core.chat import Message, TextPart
from llmesh.services.processor.convert import messages_from_proto
from llmesh.services.processor.redact import Redaction, Redactor, redact_messages
from llmesh.services.processor.screen import Screener, Screening
from llmesh.services.templates import Renderer, TemplateVersion
from llmesh.services.templates.convert import (
    parameters_to_proto,
    struct_to_dict,
    version_from_proto,
)
from llmesh.v1 import chat_pb2, processor_pb2, templates_pb2

__all__ = [
    "Preparer",
    "restore",
    "rules_from_proto",
    "rules_to_proto",
    "screening_from_proto",
    "screening_to_proto",
]

_TEMPLATE_ROLES = {
    "system": chat_pb2.ROLE_SYSTEM,
    "user": chat_pb2.ROLE_USER,
    "assistant": chat_pb2.ROLE_ASSISTANT,
}


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
        self._versions: OrderedDict[
            bytes, tuple[TemplateVersion, templates_pb2.TemplateParameters]
        ] = OrderedDict()
        self._cached = cached
        self._renderer = Renderer()

    def render(
        self, render: processor_pb2.TemplateRender
    ) -> tuple[list[chat_pb2.Message], templates_pb2.TemplateParameters]:
        """A template version rendered with its variables: the messages and the version's
        default parameters; INVALID_REQUEST naming a missing or undeclared variable or a text
        that does not render."""
        version, parameters = self._version(render.template)
        rendered = self._renderer.render(version, struct_to_dict(render.variables))
        messages = [
            chat_pb2.Message(role=_TEMPLATE_ROLES[role], content=text)
            for role, text in rendered.messages
        ]
        return messages, parameters

    def _version(
        self, template: templates_pb2.TemplateVersion
    ) -> tuple[TemplateVersion, templates_pb2.TemplateParameters]:
        """The version a request carries, with its default parameters in wire form; the
        last ones seen are kept by their bytes (a pure function of them)."""
        key = template.SerializeToString(deterministic=True)
        kept = self._versions.get(key)
        if kept is not None:
            self._versions.move_to_end(key)
            return kept
        version = version_from_proto(template, trusted=True)
        if not version.name or not version.version:
            raise invalid([FieldViolation("template.template", "a stored template version")])
        kept = self._versions[key] = (version, parameters_to_proto(version.parameters))
        if len(self._versions) > self._cached:
            self._versions.popitem(last=False)
        return kept

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
        """The request's messages through its steps, with the pseudonyms, the decisions and
        the output rules (validated, groups expanded)."""
        bad = [
            FieldViolation(f"steps[{i}]", f"unknown step {s!r}; one of {list(PRE_STEPS)}")
            for i, s in enumerate(request.steps)
            if s not in PRE_STEPS
        ]
        if bad:
            raise invalid(bad)
        out = processor_pb2.PrepareResponse(messages=request.messages)
        if request.HasField("output_redaction"):
            output = rules_from_proto(request.output_redaction, "output_redaction", streamed=True)
            out.output_redaction.CopyFrom(output_rules_to_proto(output))
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
                config = screening_from_proto(request.screening)
                screening = self._screening(config, messages)
                decision = out.decisions.add()
                _screen_decision(decision, config, screening, refuse=True)
            else:
                redacted, redaction = self._redact(request.redaction, messages)
                decision = out.decisions.add(step=step)
                _redact_decision(decision, redaction)
                for value, placeholder in redaction.placeholders.items():
                    out.pseudonyms.add(placeholder=placeholder, value=value)
                _write_texts(out.messages, messages, redacted)
                messages = redacted
            decision.duration.FromNanoseconds(int((time.perf_counter() - started) * 1e9))
        return out

    def redact(
        self, request: processor_pb2.RedactRequest
    ) -> tuple[processor_pb2.RedactResponse, processor_pb2.StepDecision]:
        """The ``Redact`` RPC: the redact step alone, and its decision (for the metrics)."""
        started = time.perf_counter()
        messages = messages_from_proto(request.messages, self._limits)
        redacted, redaction = self._redact(request.redaction, messages)
        out = processor_pb2.RedactResponse(messages=request.messages, counts=redaction.counts)
        for value, placeholder in redaction.placeholders.items():
            out.pseudonyms.add(placeholder=placeholder, value=value)
        _write_texts(out.messages, messages, redacted)
        decision = processor_pb2.StepDecision(step="redact")
        _redact_decision(decision, redaction)
        decision.duration.FromNanoseconds(int((time.perf_counter() - started) * 1e9))
        return out, decision

    def screen(
        self, request: processor_pb2.ScreenRequest
    ) -> tuple[processor_pb2.ScreenResponse, processor_pb2.StepDecision]:
        """The ``Screen`` RPC: the screen step alone; a call at or above the threshold gets
        the action as its decision (``block`` included) instead of an error."""
        started = time.perf_counter()
        config = screening_from_proto(request.screening)
        messages = messages_from_proto(request.messages, self._limits)
        screening = self._screening(config, messages)
        decision = processor_pb2.StepDecision()
        _screen_decision(decision, config, screening, refuse=False)
        decision.duration.FromNanoseconds(int((time.perf_counter() - started) * 1e9))
        out = processor_pb2.ScreenResponse(
            score=decision.score, rules=decision.rules, decision=decision.decision
        )
        return out, decision

    def _redact(
        self, rules: processor_pb2.RedactionRules, messages: Sequence[Message]
    ) -> tuple[tuple[Message, ...], Redaction]:
        redaction = self._redactor(rules).start()
        return redact_messages(messages, redaction), redaction

    def _screening(self, config: ScreenConfig, messages: Sequence[Message]) -> Screening:
        return self._screener(config).screen(messages)


def _redact_decision(decision: processor_pb2.StepDecision, redaction: Redaction) -> None:
    decision.step = "redact"
    decision.decision = redaction.redactor.mode.value if redaction.counts else "clean"
    decision.counts.update(redaction.counts)


def _screen_decision(
    decision: processor_pb2.StepDecision,
    config: ScreenConfig,
    screening: Screening,
    *,
    refuse: bool,
) -> None:
    """Fill the screen step's decision; with `refuse`, a block fails the call (naming the
    rules, never the text)."""
    hit = screening.score >= config.threshold
    if refuse and hit and config.action is ScreenAction.BLOCK:
        named = ", ".join(screening.rules)
        raise LlmeshError(
            Reason.INVALID_REQUEST,
            f"the input looks like a prompt injection (score {screening.score:.2f}, "
            f"threshold {config.threshold:.2f}; rules {named}); screening in block mode "
            "refuses it",
            metadata={"step": "screen", "rules": ",".join(screening.rules)},
        )
    decision.step = "screen"
    decision.decision = config.action.value if hit else "clean"
    decision.score = screening.score
    decision.rules.extend(screening.rules)


def restore(request: processor_pb2.RestoreRequest) -> processor_pb2.RestoreResponse:
    """The ``Restore`` RPC: the placeholders of the text and of the messages' texts (text
    parts, tool-call arguments JSON-escaped) replaced by their values; placeholders not
    listed stay as they are."""
    bad: list[FieldViolation] = []
    values: dict[str, str] = {}
    for i, p in enumerate(request.pseudonyms):
        if not PLACEHOLDER.fullmatch(p.placeholder):
            bad.append(
                FieldViolation(f"pseudonyms[{i}].placeholder", "a placeholder like <EMAIL_1>")
            )
        elif values.setdefault(p.placeholder, p.value) != p.value:
            bad.append(FieldViolation(f"pseudonyms[{i}].placeholder", "listed twice"))
    if bad:
        raise invalid(bad)
    text = _Counted(values)
    arguments = _Counted(json_escaped(values))
    out = processor_pb2.RestoreResponse(text=text.replace(request.text))
    out.messages.extend(request.messages)
    for m in out.messages:
        m.content = text.replace(m.content)
        for part in m.parts:
            if part.WhichOneof("kind") == "text":
                part.text = text.replace(part.text)
        for call in m.tool_calls:
            call.arguments = arguments.replace(call.arguments)
    out.restored = text.restored + arguments.restored
    return out


class _Counted:
    """A `Restorer` that counts the placeholders it replaced."""

    def __init__(self, values: dict[str, str]) -> None:
        self._restorer = Restorer(values)
        self._values = values
        self.restored = 0

    def replace(self, text: str) -> str:
        if "<" in text:
            self.restored += sum(1 for m in PLACEHOLDER.finditer(text) if m.group() in self._values)
        return self._restorer.replace(text)


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
