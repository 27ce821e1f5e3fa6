"""Detectors of sensitive values in text: a regular expression each, plus a check where the
format has one (Luhn for card numbers, ISO 7064 mod-97 for IBANs, address parsing for IPv6).

A detector finds spans; which of them win where they overlap, and what replaces them, is
`llmesh.services.common.redaction.redactor`'s work.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "BUILTIN",
    "Detector",
    "Finding",
    "gate",
    "iban_valid",
    "luhn_valid",
    "words_pattern",
]


class Finding(NamedTuple):
    """One sensitive value found: where it is and which detector found it (a named tuple:
    thousands are made per second)."""

    start: int
    end: int
    detector: str


@dataclass(frozen=True)
class Detector:
    """A named pattern; `check` (when set) must accept a match's text for it to count.

    Patterns start with a literal or a character class, never an assertion, so that the
    regex engine skips ahead to where a match can start; what may not come just before a
    match (`not_after`) is checked here instead of with a leading look-behind (a pattern may
    repeat it after its first character where that changes no result, as IPv4's does).
    """

    name: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None = None
    not_after: str = ""
    """Characters that may not come just before a match; ``"w"`` stands for word characters."""
    needs: tuple[str, ...] = ()
    """Substrings of which the text must hold one for a match to be possible (a fast skip)."""
    digits: bool = False
    """Every match holds a decimal digit: an ASCII text without one is passed over (a fast
    skip; other texts may hold other scripts' digits, which ``\\d`` matches too)."""

    def find(self, text: str) -> list[Finding]:
        """The spans of `text` this detector finds, left to right."""
        check = self.check
        return [
            Finding(start, end, self.name)
            for start, end in self.spans(text)
            if check is None or check(text[start:end])
        ]

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The (start, end) of the pattern's matches not preceded by `not_after`, left to
        right, before `check`: a caller may check only the spans it would keep."""
        if self.needs and not any(n in text for n in self.needs):
            return []
        if self.digits and text.isascii() and not any(d in text for d in _DIGITS):
            return []
        not_after = self.not_after
        if not not_after:
            return [m.span() for m in self.pattern.finditer(text)]
        words = "w" in not_after
        spans: list[tuple[int, int]] = []
        for m in self.pattern.finditer(text):
            start = m.start()
            if start:
                before = text[start - 1]
                if before in not_after or (words and (before.isalnum() or before == "_")):
                    continue
            spans.append(m.span())
        return spans


_DIGITS = "0123456789"
_VALUE = {str(d): d for d in range(10)}
_DOUBLED = {str(d): (2 * d if d < 5 else 2 * d - 9) for d in range(10)}
_PHONE_MARKS = "+() .-"


def luhn_valid(text: str) -> bool:
    """True when the digits of `text` (13 to 19 of them) pass the Luhn checksum."""
    digits = text.replace(" ", "").replace("-", "")
    if digits.isascii() and digits.isdigit():  # a candidate's shape: no int() per digit
        if not 13 <= len(digits) <= 19:
            return False
        backwards = digits[::-1]
        odd = sum(map(_VALUE.__getitem__, backwards[0::2]))
        return (odd + sum(map(_DOUBLED.__getitem__, backwards[1::2]))) % 10 == 0
    numbers = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(numbers) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(numbers)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """True when `text` (spaces allowed) is 15 to 34 characters passing the mod-97 check."""
    iban = text.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


_PHONE = re.compile(r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}")


def _phone_valid(text: str) -> bool:
    """9 to 15 digits in a phone number's shape (the pattern only finds candidates).

    `text` is a match of the phone detector's pattern: digits and ``+() .-`` only, so the
    digits are what the marks leave.
    """
    size = len(text)
    if size < 9:  # fewer than 9 characters: fewer than 9 digits
        return False
    digits = size - sum(map(text.count, _PHONE_MARKS))
    return 9 <= digits <= 15 and _PHONE.fullmatch(text) is not None


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_OCTETS = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def _ipv4_valid(text: str) -> bool:
    """Four octets of at most 255, without leading zeros."""
    if text.isascii():  # no int() per octet
        return _OCTETS.fullmatch(text) is not None
    return all(int(p) <= 255 and (len(p) == 1 or p[0] != "0") for p in text.split("."))


def _ipv6_valid(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


BUILTIN: tuple[Detector, ...] = (
    # secrets first: at the same start, the earlier detector of two equally long spans wins
    Detector(
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----)?"
        ),
        needs=("-----BEGIN",),
    ),
    Detector(
        "anthropic_key",
        re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}"),
        not_after="w-",
        needs=("sk-ant-",),
    ),
    Detector(
        "openai_key",
        re.compile(r"sk-(?!ant-)(?:proj-)?[A-Za-z0-9_-]{20,}"),
        not_after="w-",
        needs=("sk-",),
    ),
    Detector(
        "aws_key",
        re.compile(r"A(?:KIA|SIA)[0-9A-Z]{16}\b"),
        not_after="w",
        needs=("AKIA", "ASIA"),
    ),
    Detector(
        "github_token",
        re.compile(r"g(?:h[pousr]|ithub_pat)_[A-Za-z0-9_]{36,}\b"),
        not_after="w",
        needs=("gh", "github_pat_"),
    ),
    Detector(
        "slack_token", re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}"), not_after="w", needs=("xox",)
    ),
    Detector(
        "jwt",
        re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        not_after="w",
        needs=("eyJ",),
    ),
    Detector(
        "email",
        re.compile(
            # possessive: '@' is not in the class, so giving characters back never helps
            r"[A-Za-z0-9._%+-]++@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
            r"(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
        ),
        not_after="w",
        needs=("@",),
    ),
    Detector(
        "credit_card",
        re.compile(r"\d(?:[ -]?\d){12,18}(?![\d-])"),
        luhn_valid,
        not_after="-0123456789",
        digits=True,
    ),
    Detector(
        "iban",
        # ``[A-Z][A-Z]``, not ``[A-Z]{2}``: a pattern opening with a character class lets the
        # engine skip to where a match can start, one opening with a repeat does not
        re.compile(r"[A-Z][A-Z]\d{2}(?: ?[A-Z0-9]){11,30}\b"),
        iban_valid,
        not_after="w",
        digits=True,
    ),
    Detector(
        "ipv4",
        # the look-behind after the first digit refuses a start after a word character or a
        # dot in the engine; `not_after` says the same, and as every character of a match is
        # one of those, no start it skips could have led to another finding
        re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\d|\.\d)"),
        _ipv4_valid,
        not_after="w.",
        digits=True,
    ),
    Detector(
        "ipv6",
        re.compile(r"[0-9A-Fa-f:](?:[0-9A-Fa-f]{0,4}:){1,7}(?:[0-9A-Fa-f]{1,4}|:)(?![\w:])"),
        _ipv6_valid,
        not_after="w:.",
        needs=(":",),
    ),
    Detector(
        "phone",
        # ``[+(]?\d[\d ().-]{6,}\d(?!\w)`` starting with a class, so that the engine skips to
        # where a match can start: a digit, or ``+`` or ``(`` and then a digit
        re.compile(r"[+(\d](?:(?<=\d)|\d)[\d ().-]{6,}\d(?!\w)"),
        _phone_valid,
        not_after="w+",
        digits=True,
    ),
)
"""The built-in detectors, in priority order."""


def gate(detectors: Sequence[Detector]) -> Callable[[str], bool] | None:
    """A test true for every text where one of `detectors` may match: it holds a digit (for
    a detector whose matches all hold one) or one of a detector's `needs`; None when a
    detector has neither (a user's pattern or word list), so every text must be scanned.

    Most texts of a conversation hold no digit, ``@``, ``:`` or key prefix: a few substring
    searches pass them over instead of a call per detector.
    """
    literals: list[str] = []
    digits = False
    for d in detectors:
        if d.needs:
            literals += d.needs
        elif d.digits:
            digits = True
        else:
            return None
    needs = tuple(dict.fromkeys(literals))

    def possible(text: str) -> bool:
        if digits:
            if text.isascii():
                if any(c in text for c in _DIGITS):
                    return True
            elif _ANY_DIGIT.search(text) is not None:  # other scripts' digits too, as \d
                return True
        return any(n in text for n in needs)

    return possible


_ANY_DIGIT = re.compile(r"\d")


def words_pattern(words: Sequence[str]) -> re.Pattern[str]:
    """A case-insensitive pattern matching any of `words` as whole words, longest first."""
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
