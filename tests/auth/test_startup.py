"""`open_access` / `check_listener`: the startup rule read from a real key store."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from llmesh.services.auth import check_listener, open_access, open_key_store
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.exposure import ExposureError


async def _with_key(url: str) -> str:
    store = await open_key_store(url)
    try:
        _, key = await store.create("acme")
    finally:
        await store.aclose()
    return key


async def test_no_keys_on_loopback_is_open(sqlite_url: str) -> None:
    access = await open_access("svc", "127.0.0.1:0", sqlite_url, allow_unauthenticated=False)
    try:
        assert not access.authenticator.required
        assert (await access.authenticator.authenticate([])).tenant == "default"
    finally:
        await access.aclose()


async def test_a_key_created_later_switches_authentication_on(sqlite_url: str) -> None:
    """The processor, like the orchestrator, needs no restart after the first key."""
    access = await open_access("svc", "127.0.0.1:0", sqlite_url, allow_unauthenticated=False)
    try:
        assert not access.authenticator.required
        await _with_key(sqlite_url)
        with pytest.raises(LlmeshError) as info:
            await access.authenticator.authenticate([])
        assert info.value.reason is Reason.UNAUTHENTICATED
    finally:
        await access.aclose()


async def test_keys_require_one_on_any_bind(sqlite_url: str) -> None:
    key = await _with_key(sqlite_url)
    access = await open_access("svc", "127.0.0.1:0", sqlite_url, allow_unauthenticated=False)
    try:
        assert access.authenticator.required
        principal = await access.authenticator.authenticate([("authorization", f"Bearer {key}")])
        assert principal.tenant == "acme"
    finally:
        await access.aclose()


async def test_no_keys_on_the_network_is_refused(sqlite_url: str) -> None:
    with pytest.raises(ExposureError, match=r"^svc: refusing to listen on 0\.0\.0\.0:0 "):
        await open_access("svc", "0.0.0.0:0", sqlite_url, allow_unauthenticated=False)


async def test_the_override_warns(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        access = await open_access("svc", "0.0.0.0:0", sqlite_url, allow_unauthenticated=True)
    assert not access.authenticator.required
    assert "svc listens on 0.0.0.0:0 WITHOUT AUTHENTICATION" in caplog.text


async def test_check_listener_leaves_loopback_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/never/created.db"
    await check_listener("svc", "127.0.0.1", url, allow_unauthenticated=False)
    assert not (tmp_path / "never").exists()


async def test_check_listener_reads_the_keys(sqlite_url: str) -> None:
    with pytest.raises(ExposureError):
        await check_listener("svc", "0.0.0.0", sqlite_url, allow_unauthenticated=False)
    await _with_key(sqlite_url)
    await check_listener("svc", "0.0.0.0", sqlite_url, allow_unauthenticated=False)
