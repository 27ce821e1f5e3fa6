"""The startup rule: when authentication is on, and when a server refuses to start."""

from __future__ import annotations

import logging

import pytest

from llmesh.services.auth.bind import auth_required, check_bind, is_loopback

LOOPBACK = [
    "127.0.0.1",
    "127.1.2.3",
    "127.0.0.1:50051",
    "::1",
    "[::1]",
    "[::1]:50051",
    "::ffff:127.0.0.1",
    "localhost",
    "LOCALHOST:8080",
    "api.localhost",
    "unix:/run/llmesh.sock",
]
NETWORK = [
    "0.0.0.0",
    "0.0.0.0:50051",
    "::",
    "[::]:50051",
    "",
    "192.168.1.20",
    "10.0.0.5:8080",
    "fe80::1",
    "example.com",
    "localhost.example.com",
]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", NETWORK)
def test_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("bind", "has_keys", "allow", "required", "starts"),
    [
        ("127.0.0.1", False, False, False, True),  # the embedded default
        ("127.0.0.1", False, True, False, True),
        ("127.0.0.1", True, False, True, True),
        ("127.0.0.1", True, True, True, True),
        ("::1", False, False, False, True),
        ("localhost", False, False, False, True),
        ("0.0.0.0", False, False, True, False),  # refused without an override
        ("0.0.0.0", False, True, False, True),
        ("0.0.0.0", True, False, True, True),
        ("0.0.0.0", True, True, True, True),  # keys win over the override
        ("::", False, False, True, False),
        ("192.168.1.20", False, False, True, False),
        ("192.168.1.20", False, True, False, True),
        ("192.168.1.20", True, False, True, True),
    ],
)
def test_rule_table(bind: str, has_keys: bool, allow: bool, required: bool, starts: bool) -> None:
    assert auth_required(bind, has_keys, allow) is required
    if starts:
        check_bind(bind, has_keys, allow)
    else:
        with pytest.raises(ValueError, match="refusing to listen"):
            check_bind(bind, has_keys, allow)


def test_refusal_says_what_to_do() -> None:
    with pytest.raises(ValueError) as caught:
        check_bind("0.0.0.0", False, False)
    message = str(caught.value)
    assert "0.0.0.0" in message
    assert "llmesh keys create --tenant" in message
    assert "127.0.0.1" in message
    assert "--allow-unauthenticated" in message


def test_refusal_names_the_service() -> None:
    with pytest.raises(ValueError, match=r"^processor: refusing to listen on 0.0.0.0:50052 "):
        check_bind("0.0.0.0:50052", False, False, service="processor")


def test_the_override_is_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_bind("0.0.0.0:50051", False, True)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "orchestrator listens on 0.0.0.0:50051 WITHOUT AUTHENTICATION" in caplog.text


def test_keys_or_loopback_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_bind("0.0.0.0:50051", True, True)
        check_bind("127.0.0.1:50051", False, True)
    assert not caplog.records
