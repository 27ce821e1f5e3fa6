"""The startup rule with token issuers configured: they authenticate as keys do."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from llmesh.services.auth import check_listener, open_access
from llmesh.services.cli import _exposure_refusal
from llmesh.services.common.auth_settings import JwtIssuer
from llmesh.services.common.config import load_config
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.exposure import ExposureError


@pytest.fixture
def issuers(tmp_path: Path) -> tuple[JwtIssuer, ...]:
    jwks = str(tmp_path / "jwks.json")
    return (JwtIssuer(issuer="https://issuer.test/", audience="a", jwks_file=jwks),)


async def test_issuers_allow_a_network_bind_without_keys(
    sqlite_url: str, issuers: tuple[JwtIssuer, ...]
) -> None:
    with pytest.raises(ExposureError):
        await open_access("svc", "0.0.0.0:0", sqlite_url, allow_unauthenticated=False)
    with pytest.raises(ExposureError):
        await check_listener("gateway", "0.0.0.0", sqlite_url, allow_unauthenticated=False)
    await check_listener(
        "gateway", "0.0.0.0", sqlite_url, allow_unauthenticated=False, jwt_issuers=issuers
    )
    access = await open_access(
        "svc", "0.0.0.0:0", sqlite_url, allow_unauthenticated=False, jwt_issuers=issuers
    )
    try:
        assert access.authenticator.required
        with pytest.raises(LlmeshError) as caught:
            await access.authenticator.authenticate([])
        assert caught.value.reason is Reason.UNAUTHENTICATED
    finally:
        await access.aclose()


async def test_issuers_switch_authentication_on_even_on_loopback(
    sqlite_url: str, issuers: tuple[JwtIssuer, ...]
) -> None:
    access = await open_access(
        "svc", "127.0.0.1:0", sqlite_url, allow_unauthenticated=False, jwt_issuers=issuers
    )
    try:
        assert access.authenticator.required
    finally:
        await access.aclose()


def test_up_lets_issuers_authenticate_a_network_bind(
    tmp_path: Path, issuers: tuple[JwtIssuer, ...]
) -> None:
    config = replace(load_config(None, env={}), database_url=f"sqlite:///{tmp_path}/none.db")
    plan = [("gateway", "0.0.0.0:8080", "")]
    refusal = _exposure_refusal(config, plan)
    assert refusal is not None and "refusing to listen on 0.0.0.0" in refusal
    assert _exposure_refusal(replace(config, jwt_issuers=issuers), plan) is None
