"""The gateway's bind rule at start-up, and API keys checked behind it by the processor."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from llmesh.gateway import GatewaySettings, start
from llmesh.gateway.server import check_exposure
from llmesh.services.auth import open_key_store
from llmesh.services.common.config import load_config, with_overrides
from llmesh.services.common.exposure import ExposureError
from llmesh.services.processor.server import serve as serve_processor


async def _create_key(url: str) -> str:
    store = await open_key_store(url)
    try:
        _, key = await store.create("acme")
    finally:
        await store.aclose()
    return key


@pytest.fixture
def settings(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(key_store_url=f"sqlite:///{tmp_path}/keys.db")


async def test_a_network_host_without_keys_is_refused_before_binding(
    settings: GatewaySettings,
) -> None:
    with pytest.raises(ExposureError, match=r"^gateway: refusing to listen on 0\.0\.0\.0 "):
        await start(settings, "0.0.0.0", 0)


def test_the_configuration_reaches_the_check(tmp_path: Path) -> None:
    config = with_overrides(
        load_config(None, env={}), database_url="sqlite:///x.db", allow_unauthenticated=True
    )
    settings = GatewaySettings.from_config(config)
    assert (settings.key_store_url, settings.allow_unauthenticated) == ("sqlite:///x.db", True)


async def test_the_override_is_logged_loudly(
    settings: GatewaySettings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        await check_exposure(replace(settings, allow_unauthenticated=True), "0.0.0.0")
    assert "gateway listens on 0.0.0.0 WITHOUT AUTHENTICATION" in caplog.text


async def test_keys_allow_a_network_host(
    settings: GatewaySettings, caplog: pytest.LogCaptureFixture
) -> None:
    await _create_key(settings.key_store_url)
    with caplog.at_level(logging.WARNING):
        await check_exposure(settings, "0.0.0.0")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_with_keys_token_counts_need_one(tmp_path: Path) -> None:
    config = with_overrides(load_config(None, env={}), database_url=f"sqlite:///{tmp_path}/keys.db")
    key = await _create_key(config.database_url)
    processor = await serve_processor("127.0.0.1:0", config=config)
    gateway = await start(
        replace(
            GatewaySettings.from_config(config),
            processor_address=f"127.0.0.1:{processor.port}",
        )
    )
    body = {"model": "openai/gpt-4o", "text": "hello world"}
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
            r = await http.post("/api/v1/tokens/count", json=body)
            assert r.status_code == 401
            assert r.json()["error"]["reason"] == "UNAUTHENTICATED"
            r = await http.post(
                "/api/v1/tokens/count", json=body, headers={"authorization": f"Bearer {key}"}
            )
            assert r.status_code == 200
            assert r.json()["tokens"] == "2"
    finally:
        await gateway.stop()
        await processor.stop(None)


def test_python_dash_m_gateway_refuses_a_network_host(tmp_path: Path) -> None:
    keys = f"sqlite:///{tmp_path}/keys.db"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmesh.gateway",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--database-url",
            keys,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("python -m llmesh.gateway: gateway: refusing to listen on 0.0.0.0 ")
