"""Heuristic prompt-injection and jailbreak rules, each with a weight.

A rule looks at one text (a user message or a tool result) and says whether it matches;
the weights of the rules that matched combine into the call's score (`combine`). The
patterns are meant for what attacks say, not for ordinary prompts that mention the same
words ("ignore the typos", "the system prompt of my app", a base64 image).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["RULES", "Rule", "combine"]

_I = re.IGNORECASE

_IGNORE_PREVIOUS = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,40}?"
    r"\b(?:previous|prior|above|earlier|preceding|original|all|your|system)\s+"
    r"(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails|constraints)\b",
    _I,
)
_ROLE_OVERRIDE = re.compile(
    r"\b(?:you\s+are\s+now|from\s+now\s+on,?\s+you\s+are|act\s+as|speak\s+as"
    r"|pretend\s+(?:to\s+be|you\s+are)|role-?play\s+as|switch\s+to)\s+(?:the\s+|your\s+)?"
    r"(?:system(?:\s+(?:prompt|message))?|developer\s+(?:mode|message))\b"
    r"(?!\s+(?:admin|administrator|engineer|architect|analyst|designer|integrator|programmer))"
    r"|^\s*(?:#+\s*)?(?:system|developer)\s*(?:message|prompt)?\s*:\s*"
    r"(?:you\b|the\s+assistant\b|assistant\b|ignore\b|new\s+instructions|from\s+now\s+on)"
    r"|<\|?(?:im_start\|?>\s*system|system\|?>)|\[/?(?:system|inst)\]",
    _I | re.MULTILINE,
)
_JAILBREAK_WORDS = re.compile(
    r"\bdo\s+anything\s+now\b|\bdeveloper\s+mode\s+(?:enabled|on|activated)\b"
    r"|\byou\s+are\s+(?:now\s+)?jailbroken\b|\bjailbr(?:eak|oken)\s+mode\b"
    r"|\b(?:answer|respond|reply|talk|speak|act|behave|operate)\w*\b[^.\n]{0,30}?"
    r"\b(?:with\s*out|free\s+(?:of|from))\s+(?:any\s+)?"
    r"(?:restrictions|limitations|filters|censorship|guidelines|ethical\s+constraints)\b"
    r"|\bno\s+longer\s+(?:bound|restricted)\s+by\s+(?:any\s+|your\s+)?"
    r"(?:rules|restrictions|guidelines|policies)\b",
    _I,
)
_DAN = re.compile(r"\bDAN\b|\bSTAN\b|\bDUDE\b")
_REVEAL = re.compile(
    r"\b(?:reveal|show|print|repeat|output|display|leak|dump|give\s+me|tell\s+me|what\s+(?:is|are|was))"
    r"\b[^.\n?]{0,30}?\b(?:your|the)\s+(?:system|initial|hidden|original|secret|developer)\s+"
    r"(?:prompt|instructions?|message)\b"
    r"|\b(?:repeat|print|output)\s+(?:everything|all|the\s+text)\s+(?:above|before)\b",
    _I,
)
_TOOL_INSTRUCTIONS = re.compile(
    r"\b(?:new|updated|additional|important|urgent)\s+instructions?\s*:"
    r"|\bnote\s+to\s+(?:the\s+)?(?:ai|assistant|model|llm|agent)\b"
    r"|\b(?:ai|assistant|model|llm|agent)\b\s*[,:]?\s*(?:you\s+)?(?:must|should|are\s+required\s+to)\s+now\b"
    r"|\b(?:do\s+not|don't|never)\s+(?:tell|inform|mention\s+(?:this\s+)?to|reveal\s+(?:this\s+)?to)"
    r"\s+the\s+user\b",
    _I,
)
_BASE64 = re.compile(r"[A-Za-z0-9+/]{80,}={0,2}")
_INVISIBLE = re.compile("[\u200b\u200c\u200e\u200f\u2060-\u2064\u202a-\u202e\ufeff\u00ad]")
_TAGS = re.compile("[\U000e0000-\U000e007f]{8,}")
Matcher = Callable[[str, str], bool]
"""(text, the text lowercased) -> matched."""
_TEXT_RULES = (_IGNORE_PREVIOUS, _ROLE_OVERRIDE, _JAILBREAK_WORDS, _REVEAL, _TOOL_INSTRUCTIONS)


_JAILBREAK_KEYS = (
    "anything",
    "developer",
    "jailbr",
    "restriction",
    "limitation",
    "filter",
    "censorship",
    "guideline",
    "constraint",
    "rules",
    "polic",
)


def _jailbreak(text: str, lower: str) -> bool:
    if any(k in lower for k in _JAILBREAK_KEYS) and _JAILBREAK_WORDS.search(text):
        return True
    return (
        ("DAN" in text or "STAN" in text or "DUDE" in text)
        and bool(_DAN.search(text))
        and bool(re.search(r"\b(?:you|act|pretend|mode)\b", lower))
    )


def _long_run(text: str) -> bool:
    """False when every 40 characters from a multiple of 40 hold a space, so no 80 characters
    in a row lack one (cheaper than splitting the text)."""
    return any(" " not in text[i : i + 40] for i in range(0, len(text) - 39, 40))


def _encoded(text: str, lower: str) -> bool:
    """A long base64 blob whose decoded text says what the other rules look for."""
    if not _long_run(text) or max(map(len, text.split()), default=0) < 80:
        return False  # no run of 80 characters without a space: no blob
    for blob in _BASE64.findall(text):
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue  # images and other binary data are not instructions
        if any(p.search(decoded) for p in _TEXT_RULES) or _jailbreak(decoded, decoded.lower()):
            return True
    return False


def _invisible(text: str, lower: str) -> bool:
    """Zero-width and direction-control characters (three or more; the zero-width joiner of
    emoji sequences does not count), or a run of Unicode tag characters (ASCII smuggling)."""
    if text.isascii():
        return False
    return len(_INVISIBLE.findall(text)) >= 3 or bool(_TAGS.search(text))


Needs = tuple[tuple[tuple[str, ...], ...], ...]
"""Alternatives, each a list of word groups: a text holding, for some alternative, a word of
each of its groups (lowercased) may match; any other text cannot."""


def _search(pattern: re.Pattern[str], *keys: str, ascii_needs: Needs = ()) -> Matcher:
    """`pattern` found in the text, tried only when the lowercased text holds one of `keys`
    (words every match contains: most texts are passed over without the regex).

    `ascii_needs`: a finer skip for ASCII texts (where lowercasing and the pattern's case
    folding agree), for patterns whose common words alone say little.
    """
    if not ascii_needs:
        return lambda text, lower: any(k in lower for k in keys) and bool(pattern.search(text))

    def matches(text: str, lower: str) -> bool:
        if not any(k in lower for k in keys):
            return False
        if text.isascii() and not any(
            all(any(w in lower for w in group) for group in alternative)
            for alternative in ascii_needs
        ):
            return False
        return pattern.search(text) is not None

    return matches


@dataclass(frozen=True, slots=True)
class Rule:
    """One detector and its weight in the score."""

    name: str
    weight: float
    """0..1: how strongly a match alone says injection."""
    matches: Matcher
    """(text, the text lowercased) -> matched."""
    tool_only: bool = False
    """Applies to tool results only."""


RULES: tuple[Rule, ...] = (
    Rule(
        "ignore_previous",
        0.6,
        _search(
            _IGNORE_PREVIOUS,
            "instruction",
            "prompt",
            "rules",
            "direct",
            "guide",
            "guardrail",
            "constraint",
        ),
    ),
    Rule(
        "role_override",
        0.5,
        _search(_ROLE_OVERRIDE, "system", "developer", "inst]"),
    ),
    Rule("jailbreak", 0.7, _jailbreak),
    Rule(
        "reveal_system_prompt",
        0.6,
        _search(
            _REVEAL,
            *("prompt", "instruction", "message", "above", "before"),
            ascii_needs=(
                (
                    ("prompt", "instruction", "message"),
                    ("system", "initial", "hidden", "original", "secret", "developer"),
                    ("your", "the"),
                    (
                        *("reveal", "show", "print", "repeat", "output", "display"),
                        *("leak", "dump", "give", "tell", "what"),
                    ),
                ),
                (("above", "before"), ("repeat", "print", "output"), ("everything", "all", "text")),
            ),
        ),
    ),
    Rule(
        "tool_instructions",
        0.5,
        _search(
            _TOOL_INSTRUCTIONS,
            *("instruction", "note", "must", "should", "required"),
            *("tell", "inform", "mention", "reveal"),
        ),
        tool_only=True,
    ),
    Rule("encoded_payload", 0.6, _encoded),
    Rule("invisible_characters", 0.4, _invisible),
)
"""The built-in rules, in the order of `llmesh.services.common.step_settings.SCREEN_RULES`."""


def combine(scores: Iterable[float]) -> float:
    """Independent signals combined (noisy-or): 1 - prod(1 - s), in 0..1."""
    rest = 1.0
    for s in scores:
        rest *= 1.0 - min(max(s, 0.0), 1.0)
    return 1.0 - rest
