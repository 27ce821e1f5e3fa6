"""Starting the emulator: in process on any port, as a module, and its admin endpoints."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import httpx
import openai
import pytest

from llmesh.services.common.exposure import ExposureError
from llmesh.services.emulator import EmulatorSettings, FaultSpec, Latency, start
from llmesh.services.emulator.app import check_host
from tests.emulator.helpers import MODEL


async def test_start_on_port_zero_returns_the_bound_port() -> None:
    runner, port = await start(EmulatorSettings(port=0))
    try:
        assert port > 0
        async with httpx.AsyncClient() as client:
            health = await client.get(f"http://127.0.0.1:{port}/emulator/health")
        assert health.json() == {"status": "ok"}
    finally:
        await runner.cleanup()


async def test_reset_empties_the_prompt_cache(
    http: httpx.AsyncClient, oai: openai.AsyncOpenAI
) -> None:
    messages = [
        {"role": "system", "content": " ".join(["word"] * 1100)},
        {"role": "user", "content": "hi"},
    ]

    async def cached() -> int:
        completion = await oai.chat.completions.create(model=MODEL, messages=messages)
        assert completion.usage and completion.usage.prompt_tokens_details
        return completion.usage.prompt_tokens_details.cached_tokens or 0

    assert (await cached(), await cached()) == (0, 1024)
    await http.post("/emulator/reset")
    assert await cached() == 0


async def test_any_api_key_or_none(emulator: str) -> None:
    async with httpx.AsyncClient(base_url=emulator) as client:
        body = {"model": "whatever-model", "messages": [{"role": "user", "content": "hi"}]}
        resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200 and resp.json()["model"] == "whatever-model"


def test_settings_from_mapping() -> None:
    settings = EmulatorSettings.from_mapping(
        {
            "port": 9000,
            "latency": {"slow": {"ttft_ms": 200, "itl_ms": 20}},
            "faults": {"flaky": {"fault": "cut", "after": 3, "times": 2}},
            "cache_ttl_s": 60,
        }
    )
    assert settings.port == 9000
    assert settings.latency_for("slow") == Latency(200, 20)
    assert settings.latency_for("other") == Latency(0, 0)
    assert settings.faults["flaky"] == FaultSpec("cut", after=3, times=2)
    with pytest.raises(ValueError):
        EmulatorSettings.from_mapping({"bogus": 1})
    with pytest.raises(ValueError):
        FaultSpec("explode")
    with pytest.raises(ValueError):
        FaultSpec.from_mapping({"fault": "cut", "after": "2"})


async def test_python_dash_m_serves_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmesh.services.emulator",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("llmesh emulator listening on http://127.0.0.1:")
        url = line.split()[-1]
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/emulator/health")).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_network_host_is_refused_before_binding() -> None:
    with pytest.raises(ExposureError, match=r"^emulator: refusing to listen on 0\.0\.0\.0 "):
        await start(EmulatorSettings(host="0.0.0.0", port=0))


def test_the_opt_out_is_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_host(EmulatorSettings(host="0.0.0.0", allow_unauthenticated=True))
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "emulator listens on 0.0.0.0 WITHOUT AUTHENTICATION" in caplog.text


async def test_python_dash_m_refuses_a_network_host() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmesh.services.emulator",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 1
    assert out == b""
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "python -m llmesh.services.emulator: emulator: refusing to listen on 0.0.0.0"
    )


def test_the_opt_out_from_a_mapping_is_a_boolean() -> None:
    assert EmulatorSettings.from_mapping({"allow_unauthenticated": True}).allow_unauthenticated
    with pytest.raises(ValueError, match="allow_unauthenticated must be true or false"):
        EmulatorSettings.from_mapping({"allow_unauthenticated": "yes"})
