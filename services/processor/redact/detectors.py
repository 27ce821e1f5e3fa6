"""Detectors of sensitive values in text: a regular expression each, plus a check where the
format has one (Luhn for card numbers, ISO 7064 mod-97 for IBANs, address parsing for IPv6).

A detector finds spans; which of them win where they overlap, and what replaces them, is
`llmesh.services.processor.redact.redactor`'s work.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "BUILTIN",
    "Detector",
    "Finding",
    "iban_valid",
    "luhn_valid",
    "words_pattern",
]


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive value found: where it is and which detector found it."""

    start: int
    end: int
    detector: str


@dataclass(frozen=True)
class Detector:
    """A named pattern; `check` (when set) must accept a match's text for it to count."""

    name: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None = None

    def find(self, text: str) -> Iterator[Finding]:
        """The spans of `text` this detector finds, left to right."""
        for m in self.pattern.finditer(text):
            if self.check is None or self.check(m.group()):
                yield Finding(m.start(), m.end(), self.name)


def luhn_valid(text: str) -> bool:
    """True when the digits of `text` (13 to 19 of them) pass the Luhn checksum."""
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
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


def _phone_valid(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    return 9 <= digits <= 15


def _ipv6_valid(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

BUILTIN: tuple[Detector, ...] = (
    # secrets first: at the same start, the earlier detector of two equally long spans wins
    Detector(
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----)?"
        ),
    ),
    Detector("anthropic_key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
    Detector("openai_key", re.compile(r"\bsk-(?!ant-)(?:proj-)?[A-Za-z0-9_-]{20,}")),
    Detector("aws_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    Detector("github_token", re.compile(r"\b(?:gh[pousr]|github_pat)_[A-Za-z0-9_]{36,}\b")),
    Detector("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    Detector("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    Detector(
        "email",
        re.compile(
            r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
            r"(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
        ),
    ),
    Detector("credit_card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), luhn_valid),
    Detector("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), iban_valid),
    Detector("ipv4", re.compile(rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\d.]|\.\d)")),
    Detector(
        "ipv6",
        re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:)(?![\w:])"),
        _ipv6_valid,
    ),
    Detector(
        "phone",
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?"
            r"\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?!\w)"
        ),
        _phone_valid,
    ),
)
"""The built-in detectors, in priority order."""


def words_pattern(words: Sequence[str]) -> re.Pattern[str]:
    """A case-insensitive pattern matching any of `words` as whole words, longest first."""
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
