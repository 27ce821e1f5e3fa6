"""Masking a reply streamed in pieces: the output rules' findings replaced by their labels
(``[EMAIL]``), also when a value arrives split across deltas.

Python's `re` cannot say whether a text could still become a match, so each detector's
pattern is compiled a second time with the `regex` package, whose partial matching can. The
`OutputMasker` releases text up to the first position where a match may still start or grow
(a partial match, a match running to the end of what has arrived, or one the rest of the
text could still lengthen), and holds back only that tail until more text decides it. A
private key without its ``-----END`` line is held to the end of the reply (or `MAX_HOLD`)
and masked whole, so its body never goes out.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import regex

from llmesh.services.common.redaction.detectors import Detector, Finding
from llmesh.services.common.redaction.redactor import Redactor

__all__ = ["OutputMasker", "StreamDetectors"]

_CONTEXT = 32
"""Characters of released text kept before the held tail, for what a match may not follow
(`Detector.not_after`) and for look-behinds."""

MAX_HOLD = 4096
"""The most text held back: beyond it the held text is decided as if the reply ended there
(a value longer than this, split across deltas, may be masked only in part)."""

_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE
"""The flags a pattern keeps (the `regex` package's have the same values)."""

_TO_END = {
    "private_key": (
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
        r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|[\s\S]*)"
    ),
}
"""Patterns that, in a reply, run to the end of the text when their closing part never comes."""


@dataclass(frozen=True)
class _Partial:
    """A detector with its pattern compiled for partial matching."""

    detector: Detector
    pattern: regex.Pattern[str]


class StreamDetectors:
    """A `Redactor`'s detectors compiled for partial matching (built once per rule set;
    each reply gets its own `OutputMasker`)."""

    def __init__(self, redactor: Redactor) -> None:
        """Raises `regex.error` for a user pattern the `regex` package does not accept."""
        self.detectors = tuple(
            _Partial(
                d,
                regex.compile(
                    _TO_END.get(d.name, d.pattern.pattern), (d.pattern.flags & _FLAGS) | regex.V0
                ),
            )
            for d in redactor.detectors
        )
        self._rank = {d.name: i for i, d in enumerate(redactor.detectors)}

    def scan(self, text: str, pos: int, final: bool) -> tuple[list[Finding], int]:
        """The non-overlapping findings of `text` from `pos` (the earliest start wins, then
        the longer, then the detector listed first) and the first position where a match
        may still start or grow (``len(text)`` when none; always ``len(text)`` when `final`)."""
        end = len(text)
        hold = end
        found: list[Finding] = []
        for p in self.detectors:
            d = p.detector
            for m in p.pattern.finditer(text, pos, partial=not final):
                start = m.start()
                if not final:
                    if start >= hold:  # held anyway: nothing from there on is released now
                        continue
                    if _may_grow(p.pattern, text, m):
                        hold = start
                        continue
                if start and d.not_after:
                    before = text[start - 1]
                    if before in d.not_after or (
                        "w" in d.not_after and (before.isalnum() or before == "_")
                    ):
                        continue
                if start < m.end() and (d.check is None or d.check(m.group())):
                    found.append(Finding(start, m.end(), d.name))
        found.sort(key=lambda f: (f.start, f.start - f.end, self._rank[f.detector]))
        kept: list[Finding] = []
        last = -1
        for f in found:
            if f.start >= last:
                kept.append(f)
                last = f.end
        return kept, hold


def _may_grow(pattern: regex.Pattern[str], text: str, m: regex.Match[str]) -> bool:
    """True when the match may still change with more text: it is partial, it runs to the
    end, or all the text from its start is the beginning of some longer match (a phone
    number's trailing space before its next digits)."""
    return (
        m.partial
        or m.end() == len(text)
        or pattern.fullmatch(text, m.start(), partial=True) is not None
    )


def _json_state(text: str, in_string: bool, escaped: bool) -> tuple[bool, bool]:
    """Whether JSON text is inside a string (and just after a backslash there) after `text`."""
    if not text:
        return in_string, escaped
    if not escaped and '"' not in text and "\\" not in text:
        return in_string, False
    for c in text:
        if escaped:
            escaped = False
        elif in_string and c == "\\":
            escaped = True
        elif c == '"':
            in_string = not in_string
    return in_string, escaped


class OutputMasker:
    """Masks one reply's text (or one tool call's arguments) fed in pieces."""

    __slots__ = ("_context", "_detectors", "_escaped", "_held", "_in_string", "_json", "counts")

    def __init__(self, detectors: StreamDetectors, *, json: bool = False) -> None:
        """`json`: the text is JSON (tool-call arguments): a value found outside a string (a
        phone number written as a number) is replaced by a quoted label, so the arguments
        stay valid JSON."""
        self._detectors = detectors
        self._json = json
        self._in_string = False
        self._escaped = False
        self._held = ""
        self._context = ""
        self.counts: Counter[str] = Counter()
        """Values masked per detector (never the values)."""

    @property
    def holding(self) -> bool:
        """True while text is held back."""
        return bool(self._held)

    def feed(self, text: str) -> str:
        """The text that can be released now, masked; a tail that may still become (or
        extend) a match is held back for the next piece."""
        if not text:
            return ""
        return self._release(text, final=False)

    def flush(self) -> str:
        """What is still held (the reply ended), masked."""
        if not self._held:
            return ""
        out = self._release("", final=True)
        self._context = ""
        return out

    def mask(self, text: str) -> str:
        """A whole text, masked (a unary reply)."""
        out = self._release(text, final=True)
        self._context = ""
        return out

    def _release(self, text: str, *, final: bool) -> str:
        base = len(self._context)
        full = self._context + self._held + text
        final = final or len(full) - base > MAX_HOLD
        findings, cut = self._detectors.scan(full, base, final)
        for f in findings:
            if f.start < cut < f.end:  # straddles the held tail: decided with it later
                cut = f.start
                break
        out: list[str] = []
        pos = base
        for f in findings:
            if f.end > cut:
                break
            self.counts[f.detector] += 1
            out.append(self._raw(full[pos : f.start]))
            label = f"[{f.detector.upper()}]"
            if self._json and not self._in_string:
                label = f'"{label}"'
            self._raw(full[f.start : f.end])
            out.append(label)
            pos = f.end
        out.append(self._raw(full[pos:cut]))
        self._held = full[cut:]
        self._context = full[max(0, cut - _CONTEXT) : cut]
        if final:
            self._held = ""
        return "".join(out)

    def _raw(self, text: str) -> str:
        """`text` as it goes out unchanged, the JSON string state moved past it."""
        if self._json:
            self._in_string, self._escaped = _json_state(text, self._in_string, self._escaped)
        return text
