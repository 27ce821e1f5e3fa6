"""The check every listener makes at bind: loopback, keys, or a loud, explicit opt-out."""

from __future__ import annotations

import logging

import pytest

from llmesh.services.common.exposure import ExposureError, check_exposure


def _check(bind: str, *, authenticated: bool = False, allow: bool = False) -> None:
    check_exposure(
        "thing",
        bind,
        authenticated=authenticated,
        allow_unauthenticated=allow,
        why="it has no locks",
        remedy="Add some.",
    )


@pytest.mark.parametrize("bind", ["127.0.0.1:80", "[::1]:80", "localhost", "unix:/tmp/x.sock"])
def test_loopback_starts_silently(bind: str, caplog: pytest.LogCaptureFixture) -> None:
    _check(bind)
    assert not caplog.records


@pytest.mark.parametrize("bind", ["0.0.0.0:80", "[::]:80", "", "192.168.1.20"])
def test_network_without_auth_is_refused_in_one_line(bind: str) -> None:
    with pytest.raises(ExposureError) as caught:
        _check(bind)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"thing: refusing to listen on {bind or 'all interfaces'} ")
    assert message.endswith("it has no locks. Add some.")
    assert isinstance(caught.value, ValueError)


def test_network_with_auth_starts_silently(caplog: pytest.LogCaptureFixture) -> None:
    _check("0.0.0.0:80", authenticated=True)
    assert not caplog.records


def test_the_opt_out_starts_with_a_warning_naming_the_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        _check("0.0.0.0:8080", allow=True)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "thing listens on 0.0.0.0:8080 WITHOUT AUTHENTICATION" in record.getMessage()
