"""Detectors (true and false positives, Luhn and mod-97 checks), modes, and the restorer."""

from __future__ import annotations

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.redaction.detectors import iban_valid, luhn_valid
from llmesh.services.common.step_settings import DETECTORS, RedactionConfig, RedactionMode
from llmesh.services.core.chat import Message, Role, TextPart, ToolCall
from llmesh.services.processor.redact import BUILTIN, Redactor, Restorer, redact_messages

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


def found(text: str, **rules: object) -> list[tuple[str, str]]:
    redactor = Redactor(RedactionConfig(**rules))  # type: ignore[arg-type]
    return [(f.detector, text[f.start : f.end]) for f in redactor.scan(text)]


def test_the_settings_list_the_processors_detectors_in_order() -> None:
    assert tuple(d.name for d in BUILTIN) == DETECTORS


@pytest.mark.parametrize(
    ("text", "detector", "value"),
    [
        ("write to jane.doe+x@mail.example.co.uk today", "email", "jane.doe+x@mail.example.co.uk"),
        ("call +49 151 1234 5678 now", "phone", "+49 151 1234 5678"),
        ("call (555) 123-4567", "phone", "(555) 123-4567"),
        ("card 4111 1111 1111 1111.", "credit_card", "4111 1111 1111 1111"),
        ("card 5500-0000-0000-0004", "credit_card", "5500-0000-0000-0004"),
        ("iban DE89 3704 0044 0532 0130 00 ok", "iban", "DE89 3704 0044 0532 0130 00"),
        ("iban GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
        ("host 192.168.1.20:80", "ipv4", "192.168.1.20"),
        ("the host is 10.0.0.1.", "ipv4", "10.0.0.1"),
        ("call 555 123 4567 (home)", "phone", "555 123 4567"),
        ("host 2001:db8::8a2e:370:7334 up", "ipv6", "2001:db8::8a2e:370:7334"),
        ("key sk-proj-" + "a1" * 12, "openai_key", "sk-proj-" + "a1" * 12),
        ("key sk-ant-api03-" + "b2" * 12, "anthropic_key", "sk-ant-api03-" + "b2" * 12),
        ("id AKIAIOSFODNN7EXAMPLE", "aws_key", "AKIAIOSFODNN7EXAMPLE"),
        ("tok ghp_" + "c" * 36, "github_token", "ghp_" + "c" * 36),
        ("tok xoxb-1234567890-abcdef", "slack_token", "xoxb-1234567890-abcdef"),
        ("jwt " + JWT, "jwt", JWT),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
            "private_key",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
        ),
    ],
)
def test_detectors_find_what_they_name(text: str, detector: str, value: str) -> None:
    assert found(text) == [(detector, value)]


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # fails Luhn
        "iban DE89 3704 0044 0532 0130 01",  # fails mod 97
        "at 12:30:45 on 2024-01-15, version 1.2.3.4.5",
        "ip 256.1.1.1 and 999.999.1.1 and 01.2.3.4",
        "a 20-digit number 41111111111111111112 and 1234-5678",
        "order 12345 shipped, room 404",
        "sk-short and AKIA123",
        "a <tag> and a@b",
    ],
)
def test_lookalikes_are_not_found(text: str) -> None:
    assert found(text) == []


def test_luhn_and_mod97() -> None:
    assert luhn_valid("4012888888881881") and not luhn_valid("4012888888881882")
    assert not luhn_valid("0" * 12)  # too short
    assert iban_valid("FR1420041010050500013M02606") and not iban_valid(
        "FR1420041010050500013M02607"
    )


def test_user_patterns_and_words_and_the_chosen_detectors_only() -> None:
    rules = {
        "detectors": ("email",),
        "patterns": (("ticket", r"TCK-\d{6}"),),
        "words": (("project", ("Falcon", "Blue Osprey")),),
    }
    text = "TCK-123456 for falcon and blue osprey, mail a@example.com, ip 10.0.0.1"
    assert found(text, **rules) == [
        ("ticket", "TCK-123456"),
        ("project", "falcon"),
        ("project", "blue osprey"),
        ("email", "a@example.com"),
    ]


def test_pseudonyms_are_stable_within_a_call_and_mask_is_a_label() -> None:
    redaction = Redactor(RedactionConfig()).start()
    out = redaction.apply("a@example.com, b@example.com, a@example.com", "x")
    assert out == "<EMAIL_1>, <EMAIL_2>, <EMAIL_1>"
    assert redaction.counts == {"email": 3}
    masked = Redactor(RedactionConfig(RedactionMode.MASK)).start()
    assert masked.apply("a@example.com", "x") == "[EMAIL]"


def test_block_names_the_detector_and_field_never_the_value() -> None:
    redaction = Redactor(RedactionConfig(RedactionMode.BLOCK)).start()
    with pytest.raises(LlmeshError) as info:
        redaction.apply("mine is a@example.com", "messages[0].content")
    err = info.value
    assert err.reason is Reason.INVALID_REQUEST
    assert err.metadata["detector"] == "email"
    assert "a@example.com" not in str(err) and "messages[0].content" in str(err)


def test_messages_texts_parts_tool_arguments_and_results_are_redacted() -> None:
    messages = (
        Message(Role.SYSTEM, "plain"),
        Message(Role.USER, parts=(TextPart("to a@example.com"),)),
        Message(
            Role.ASSISTANT,
            tool_calls=(ToolCall("c1", "send", '{"to": "a@example.com"}'),),
        ),
        Message(Role.TOOL, "sent to b@example.com", tool_call_id="c1"),
    )
    redaction = Redactor(RedactionConfig()).start()
    out = redact_messages(messages, redaction)
    assert out[0] is messages[0]
    assert out[1].parts == (TextPart("to <EMAIL_1>"),)
    assert out[2].tool_calls[0].arguments == '{"to": "<EMAIL_1>"}'
    assert out[3].content == "sent to <EMAIL_2>"


REPLY = "Hi <EMAIL_1>, x<y, <EMAIL_2> and <EMAIL_3> <E <EMAIL_1>"
VALUES = {"<EMAIL_1>": "a@example.com", "<EMAIL_2>": "b@example.com"}
RESTORED = "Hi a@example.com, x<y, b@example.com and <EMAIL_3> <E a@example.com"


@pytest.mark.parametrize("cut", range(len(REPLY) + 1))
def test_restorer_restores_a_placeholder_split_at_any_position(cut: int) -> None:
    restorer = Restorer(VALUES)
    out = restorer.feed(REPLY[:cut]) + restorer.feed(REPLY[cut:]) + restorer.flush()
    assert out == RESTORED


def test_restorer_one_character_at_a_time_and_a_dangling_prefix_at_the_end() -> None:
    restorer = Restorer(VALUES)
    out = "".join(restorer.feed(c) for c in REPLY + " <EMAI") + restorer.flush()
    assert out == RESTORED + " <EMAI"


def test_restorer_passes_text_without_placeholders_through() -> None:
    restorer = Restorer(VALUES)
    text = "no placeholders here"
    assert restorer.feed(text) is text


def test_placeholders_already_in_the_input_are_never_given() -> None:
    messages = (Message(Role.USER, "template <EMAIL_1> for a@example.com"),)
    redaction = Redactor(RedactionConfig()).start()
    out = redact_messages(messages, redaction)
    assert out[0].content == "template <EMAIL_1> for <EMAIL_2>"
    restorer = Restorer({v: k for k, v in redaction.placeholders.items()})
    assert (
        restorer.feed(out[0].content) + restorer.flush() == "template <EMAIL_1> for a@example.com"
    )
