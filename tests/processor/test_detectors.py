"""The detectors' fast paths find exactly what the plain definitions find: the checks (Luhn,
phone digits, IPv4 octets) and the scan, on random texts built from what makes the patterns
overlap (digit runs, separators, ``@``, unicode digits and letters, adjacent values)."""

from __future__ import annotations

import ipaddress
import random
import re

import pytest

from llmesh.services.common.redaction.detectors import luhn_valid
from llmesh.services.common.step_settings import RedactionConfig
from llmesh.services.processor.redact import BUILTIN, Detector, Finding, Redactor

_PHONE = re.compile(r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}")


def plain_luhn(text: str) -> bool:
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


def plain_phone(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    return 9 <= digits <= 15 and _PHONE.fullmatch(text) is not None


def plain_ipv4(text: str) -> bool:
    return all(int(p) <= 255 and (len(p) == 1 or p[0] != "0") for p in text.split("."))


def plain_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


_PLAIN_CHECKS = {"credit_card": plain_luhn, "phone": plain_phone, "ipv4": plain_ipv4}
_PLAIN_PATTERNS = {
    "email": re.compile(
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
    ),
    "iban": re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
    "ipv4": re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?!\d|\.\d)"),
    "phone": re.compile(r"[+(]?\d[\d ().-]{6,}\d(?!\w)"),
}
"""The patterns as first written, where the detectors' are rewritten for speed."""


def plain_find(d: Detector, text: str) -> list[Finding]:
    """Every match of the pattern not preceded by a `not_after` character, checked."""
    check = _PLAIN_CHECKS.get(d.name, d.check)
    pattern = _PLAIN_PATTERNS.get(d.name, d.pattern)
    out = []
    for m in pattern.finditer(text):
        before = text[m.start() - 1] if m.start() else ""
        if before and (
            before in d.not_after or ("w" in d.not_after and (before.isalnum() or before == "_"))
        ):
            continue
        if check is None or check(m.group()):
            out.append(Finding(m.start(), m.end(), d.name))
    return out


def plain_scan(detectors: tuple[Detector, ...], text: str) -> list[Finding]:
    """All findings; the earliest start wins, then the longest, then the first detector."""
    rank = {d.name: i for i, d in enumerate(detectors)}
    found = sorted(
        (f for d in detectors for f in plain_find(d, text)),
        key=lambda f: (f.start, f.start - f.end, rank[f.detector]),
    )
    kept: list[Finding] = []
    for f in found:
        if not kept or f.start >= kept[-1].end:
            kept.append(f)
    return kept


_PIECES = [
    *"0123456789",
    *"0123456789",
    *" .-+()@:_/",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: a digit for the patterns, not ASCII
    "\u00b2",  # SUPERSCRIPT TWO: a digit for str.isdigit, not for the patterns
    "é",
    "a",
    "Z",
    "DE89",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "10.0.0.1",
    "255.255.255.255",
    "01.2.3.4",
    "+49 151 1234 5678",
    "(555) 123-4567",
    "jane@example.com",
    "x.y@a-b.example.org",
    "2001:db8::1",
    "::ffff:10.0.0.1",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "AKIAIOSFODNN7EXAMPLE",
    "sk-" + "a1" * 11,
    "sk-ant-" + "b" * 20,
    "ASIA" + "Q" * 16,
    "ghp_" + "c" * 36,
    "xoxb-abcdefghij",
    "eyJabcdefgh.eyJabcdefgh.abcdefghi",
    "-----BEGIN RSA PRIVATE KEY-----",
    "word",
    "\n",
]


def random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(_PIECES, k=rng.randint(1, 24))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(4))
def test_the_scan_finds_what_the_plain_definition_finds(seed: int) -> None:
    redactor = Redactor(RedactionConfig())
    for text in random_texts(seed, 1500):
        assert redactor.scan(text) == plain_scan(redactor.detectors, text), text


@pytest.mark.parametrize("seed", range(4))
def test_each_detector_finds_what_its_plain_definition_finds(seed: int) -> None:
    for text in random_texts(100 + seed, 500):
        for d in BUILTIN:
            assert d.find(text) == plain_find(d, text), (d.name, text)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        "4111 1111 1111 1112",
        "4111-1111-1111-1111",
        "0" * 12,
        "0" * 13,
        "0" * 19,
        "0" * 20,
        "\u0664\u0661\u0661\u0661" * 4,  # Arabic-Indic digits: the same number
        "\u0664\u0661\u0661\u0661" * 3 + "1112",
        "x4111111111111111",
        "41 11 11 11 11 11 11 11",
    ],
)
def test_luhn_agrees_with_the_plain_checksum(text: str) -> None:
    assert luhn_valid(text) is plain_luhn(text)


def test_adjacent_and_overlapping_values_resolve_as_before() -> None:
    text = "jane@example.com;4111 1111 1111 1111;10.0.0.1:80,+49 151 1234 5678/192.168.1.1"
    redactor = Redactor(RedactionConfig())
    found = redactor.scan(text)
    assert found == plain_scan(redactor.detectors, text)
    assert [(f.detector, text[f.start : f.end]) for f in found] == [
        ("email", "jane@example.com"),
        ("credit_card", "4111 1111 1111 1111"),
        ("ipv4", "10.0.0.1"),
        ("phone", "+49 151 1234 5678"),
        ("ipv4", "192.168.1.1"),
    ]


def test_octets_of_unicode_digits_are_checked_by_value() -> None:
    text = "host \u0661\u0660.\u0660.\u0660.\u0661 and \u0663\u0660\u0660.1.1.1"
    redactor = Redactor(RedactionConfig(detectors=("ipv4",)))
    assert redactor.scan(text) == plain_scan(redactor.detectors, text)
    assert [text[f.start : f.end] for f in redactor.scan(text)] == [
        "\u0661\u0660.\u0660.\u0660.\u0661"
    ]


def test_a_repeated_name_ranks_where_it_is_listed_last() -> None:
    rules = RedactionConfig(
        detectors=("ipv4",),
        patterns=(("dotted", r"\d+\.\d+\.\d+\.\d+"), ("ipv4", r"\d+\.\d+\.\d+\.\d")),
    )
    redactor = Redactor(rules)
    text = "host 10.0.0.1 up"
    assert redactor.scan(text) == plain_scan(redactor.detectors, text)
    assert [f.detector for f in redactor.scan(text)] == ["dotted"]


def test_a_span_that_fails_its_check_leaves_room_for_a_shorter_one() -> None:
    text = "card 4111 1111 1111 23 ok"  # card-shaped, fails Luhn: the phone number counts
    redactor = Redactor(RedactionConfig())
    assert redactor.scan(text) == plain_scan(redactor.detectors, text)
    assert [f.detector for f in redactor.scan(text)] == ["phone"]


def test_a_text_no_detector_can_match_is_passed_over_without_a_scan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scanned: list[str] = []
    original = Detector.spans

    def spans(self: Detector, text: str) -> list[tuple[int, int]]:
        scanned.append(self.name)
        return original(self, text)

    monkeypatch.setattr(Detector, "spans", spans)
    redactor = Redactor(RedactionConfig())
    assert redactor.scan("How do I reset the router? Ask the team.") == []
    assert scanned == []  # no digit, no @, no : and no key prefix: nothing to find
    assert redactor.scan("write to jane@example.com") == [Finding(9, 25, "email")]
    assert len(scanned) == len(redactor.detectors)
    scanned.clear()
    assert redactor.scan("room \u0663") == []  # a digit of another script: scanned
    assert len(scanned) == len(redactor.detectors)
    scanned.clear()
    custom = Redactor(RedactionConfig(detectors=("email",), patterns=(("ticket", "T-[a-z]+"),)))
    assert custom.scan("see T-abc") == [Finding(4, 9, "ticket")]  # a user pattern: always
    assert scanned == ["email", "ticket"]
