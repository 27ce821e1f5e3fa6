"""Redacting a call's text with a set of detectors, in one of three modes.

A `Redactor` is built once per set of rules (the regexes compiled); a `Redaction` is one
call's state: the placeholders given so far (the same value gets the same placeholder
everywhere in the call) and the counts per detector. Overlapping findings: the one starting
first wins; at the same start the longer; at the same length the detector listed first.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.common.redaction.detectors import (
    BUILTIN,
    Detector,
    Finding,
    gate,
    words_pattern,
)
from llmesh.services.common.step_settings import RedactionConfig, RedactionMode

__all__ = ["Redaction", "Redactor", "describe"]

_BY_NAME = {d.name: d for d in BUILTIN}

_DESCRIPTIONS = {
    "email": "an e-mail address",
    "phone": "a phone number",
    "credit_card": "a credit card number",
    "iban": "an IBAN",
    "ipv4": "an IPv4 address",
    "ipv6": "an IPv6 address",
    "openai_key": "an OpenAI API key",
    "anthropic_key": "an Anthropic API key",
    "aws_key": "an AWS access key id",
    "github_token": "a GitHub token",
    "slack_token": "a Slack token",
    "jwt": "a JSON Web Token",
    "private_key": "a PEM private key",
}


def describe(detector: str) -> str:
    """What a detector finds, in words (user detectors by name)."""
    return _DESCRIPTIONS.get(detector, f"a match of the {detector!r} pattern")


class Redactor:
    """The detectors of one set of rules, compiled."""

    def __init__(self, rules: RedactionConfig) -> None:
        self.mode = rules.mode
        detectors = [_BY_NAME[name] for name in rules.detectors]
        detectors += [Detector(name, re.compile(regex)) for name, regex in rules.patterns]
        detectors += [Detector(name, words_pattern(words)) for name, words in rules.words]
        self.detectors = tuple(detectors)
        rank = {d.name: i for i, d in enumerate(detectors)}  # a repeated name: its last place
        self._ranks = tuple(rank[d.name] for d in detectors)
        self._gate = gate(detectors)

    def scan(self, text: str) -> list[Finding]:
        """The non-overlapping findings in `text`, left to right.

        Every detector's spans are ordered together (start, then the longer, then the
        detector listed first); a span's check runs only when no kept finding overlaps it,
        which keeps what checking every span first would keep, at a fraction of the checks.
        A text holding nothing any detector needs (`gate`) is passed over in one search.
        """
        if self._gate is not None and not self._gate(text):
            return []
        ranks = self._ranks
        spans = [
            (start, start - end, ranks[i], i, end)
            for i, d in enumerate(self.detectors)
            for start, end in d.spans(text)
        ]
        if not spans:
            return []
        spans.sort()
        detectors = self.detectors
        kept: list[Finding] = []
        last = -1
        for start, _, _, i, end in spans:
            if start >= last:
                d = detectors[i]
                if d.check is None or d.check(text[start:end]):
                    kept.append(Finding(start, end, d.name))
                    last = end
        return kept

    def start(self) -> Redaction:
        """A new call's redaction state."""
        return Redaction(self)


@dataclass
class Redaction:
    """One call's redaction: placeholders given and values found per detector."""

    redactor: Redactor
    placeholders: dict[str, str] = field(default_factory=dict)
    """Value -> placeholder (pseudonymize mode)."""
    counts: Counter[str] = field(default_factory=Counter)
    """Values found per detector."""
    reserved: set[str] = field(default_factory=set)
    """Placeholder-like texts already in the input: never given, so never restored."""
    _numbers: Counter[str] = field(default_factory=Counter)

    def apply(self, text: str, where: str) -> str:
        """`text` with its findings replaced; in block mode, INVALID_REQUEST at the first
        finding, naming `where` (the field path) and the detector but never the value."""
        if not text:
            return text
        findings = self.redactor.scan(text)
        if not findings:
            return text
        mode = self.redactor.mode
        if mode is RedactionMode.BLOCK:
            detector = findings[0].detector
            what = describe(detector)
            raise LlmeshError(
                Reason.INVALID_REQUEST,
                f"{where} contains {what} (detector {detector}); "
                "redaction in block mode refuses it",
                violations=(FieldViolation(where, f"contains {what} (detector {detector})"),),
                metadata={"detector": detector, "step": "redact"},
            )
        out: list[str] = []
        pos = 0
        for f in findings:
            self.counts[f.detector] += 1
            out.append(text[pos : f.start])
            label = f.detector.upper()
            if mode is RedactionMode.MASK:
                out.append(f"[{label}]")
            else:
                out.append(self._placeholder(text[f.start : f.end], label))
            pos = f.end
        out.append(text[pos:])
        return "".join(out)

    def _placeholder(self, value: str, label: str) -> str:
        placeholder = self.placeholders.get(value)
        while placeholder is None or placeholder in self.reserved:
            self._numbers[label] += 1
            placeholder = f"<{label}_{self._numbers[label]}>"
        self.placeholders[value] = placeholder
        return placeholder
