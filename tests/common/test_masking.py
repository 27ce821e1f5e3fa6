"""Masking a reply streamed in pieces: the same result however the text is split, only the
tail that may still become a value held back, and private keys masked whole."""

from __future__ import annotations

import random

import orjson
import pytest

from llmesh.services.common.redaction import OutputMasker, Redactor, StreamDetectors
from llmesh.services.common.redaction.masking import MAX_HOLD
from llmesh.services.common.step_settings import RedactionConfig, RedactionMode

RULES = RedactionConfig(
    RedactionMode.MASK,
    patterns=(("ticket", r"TCK-[0-9]{6}"),),
    words=(("project", ("Falcon", "Blue Osprey")),),
)
REPLY = (
    "Reach jane.doe@example.com or +1 415 555 0100; card 4111 1111 1111 1111, key "
    "sk-proj-abcdefghijklmnopqrstuvwxyz1234 ok. TCK-123456 on Blue Osprey, not Falconry. "
    "IBAN DE89 3704 0044 0532 0130 00 at 192.168.0.1 and fe80::1ff:fe23:4567:890a. "
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecretbody\n-----END RSA PRIVATE KEY----- done"
)
MASKED = (
    "Reach [EMAIL] or [PHONE]; card [CREDIT_CARD], key [OPENAI_KEY] ok. [TICKET] on "
    "[PROJECT], not Falconry. IBAN [IBAN] at [IPV4] and [IPV6]. [PRIVATE_KEY] done"
)


@pytest.fixture(scope="module")
def detectors() -> StreamDetectors:
    return StreamDetectors(Redactor(RULES))


def _streamed(detectors: StreamDetectors, pieces: list[str]) -> tuple[str, OutputMasker]:
    masker = OutputMasker(detectors)
    out = [masker.feed(p) for p in pieces]
    out.append(masker.flush())
    return "".join(out), masker


def test_a_whole_text_is_masked_per_detector(detectors: StreamDetectors) -> None:
    masker = OutputMasker(detectors)
    assert masker.mask(REPLY) == MASKED
    assert masker.counts["email"] == 1 and masker.counts["private_key"] == 1
    assert sum(masker.counts.values()) == 10


@pytest.mark.parametrize("seed", range(60))
def test_any_split_masks_the_same(detectors: StreamDetectors, seed: int) -> None:
    rng = random.Random(seed)
    pieces, i = [], 0
    while i < len(REPLY):
        n = rng.randint(1, 9)
        pieces.append(REPLY[i : i + n])
        i += n
    text, masker = _streamed(detectors, pieces)
    assert text == MASKED
    assert sum(masker.counts.values()) == 10


def test_one_character_at_a_time(detectors: StreamDetectors) -> None:
    assert _streamed(detectors, list(REPLY))[0] == MASKED


def test_only_the_tail_that_may_become_a_value_is_held(detectors: StreamDetectors) -> None:
    masker = OutputMasker(detectors)
    assert masker.feed("Hello, write to jane") == "Hello, write to "
    assert masker.holding
    assert masker.feed("@exa") == ""
    assert masker.feed("mple.com today") == "[EMAIL] "  # `today` may still become one
    assert masker.feed(". Bye") == "today. "
    assert masker.flush() == "Bye" and not masker.holding


def test_a_value_that_may_still_grow_is_held_until_decided(detectors: StreamDetectors) -> None:
    masker = OutputMasker(detectors)
    # 8 digits are not a phone number yet, but the space may be followed by more digits
    assert masker.feed("call +1 415 555 ") == "call "
    assert masker.feed("0100 now") == "[PHONE] "
    assert masker.flush() == "now"


def test_an_unterminated_private_key_is_masked_to_the_end(detectors: StreamDetectors) -> None:
    masker = OutputMasker(detectors)
    assert masker.feed("key: -----BEGIN PRIVATE KEY-----\nMIIE") == "key: "
    assert masker.feed("secretsecret") == ""
    assert masker.flush() == "[PRIVATE_KEY]"


def test_context_before_the_held_tail_still_counts(detectors: StreamDetectors) -> None:
    # `xFalcon` is not the word Falcon: the `x` was released in an earlier piece
    text, masker = _streamed(detectors, ["say x", "Falcon ", "and Falcon."])
    assert text == "say xFalcon and [PROJECT]."
    assert masker.counts["project"] == 1


def test_held_text_is_bounded(detectors: StreamDetectors) -> None:
    masker = OutputMasker(detectors)
    blob = "a" * (MAX_HOLD + 100)
    released = "".join(masker.feed(blob[i : i + 64]) for i in range(0, len(blob), 64))
    assert len(blob) - len(released) <= MAX_HOLD
    assert released + masker.flush() == blob


@pytest.mark.parametrize("step", [1, 3, 7, 100])
def test_tool_arguments_stay_valid_json(detectors: StreamDetectors, step: int) -> None:
    arguments = orjson.dumps(
        {"to": "jane@example.com", "phone": 14155550100, "note": 'say "+1 415 555 0100\\\\"'}
    ).decode()
    masker = OutputMasker(detectors, json=True)
    out = "".join(masker.feed(arguments[i : i + step]) for i in range(0, len(arguments), step))
    out += masker.flush()
    assert orjson.loads(out) == {"to": "[EMAIL]", "phone": "[PHONE]", "note": 'say "[PHONE]\\\\"'}
