"""`llmesh chat` / `llmesh models`: API keys, and a plain word when the orchestrator is down."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.ports import dead_address
from llmesh.services import client
from llmesh.services.auth import keys_command, open_key_store
from llmesh.services.common.config import load_config
from llmesh.services.emulator.app import start as start_emulator
from llmesh.services.emulator.settings import EmulatorSettings
from llmesh.services.orchestrator.server import serve

LLMESH = str(Path(sys.executable).parent / "llmesh")


@dataclass
class Keyed:
    """A running orchestrator whose store holds one key, and that key."""

    address: str
    key: str


@asynccontextmanager
async def _orchestrator(tmp_path: Path) -> AsyncIterator[str]:
    """A real orchestrator (and emulator) on loopback, its store in `tmp_path`."""
    url = f"sqlite:///{tmp_path}/llmesh.db"
    runner, port = await start_emulator(EmulatorSettings(port=0))
    (tmp_path / "llmesh.yaml").write_text("")
    config = load_config(
        env={
            "LLMESH_CONFIG": str(tmp_path / "llmesh.yaml"),
            "LLMESH_DATABASE_URL": url,
            "LLMESH_EMULATOR_PORT": str(port),
        }
    )
    server = await serve(config, address="127.0.0.1:0")
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(1)
        await runner.cleanup()


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[Keyed]:
    store = await open_key_store(f"sqlite:///{tmp_path}/llmesh.db")
    try:
        _, key = await store.create("acme", "cli")
    finally:
        await store.aclose()
    async with _orchestrator(tmp_path) as address:
        yield Keyed(address, key)


async def _llmesh(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if k != "LLMESH_API_KEY"}
    proc = await asyncio.create_subprocess_exec(
        LLMESH,
        *args,
        env=base | (env or {}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_without_a_key_the_mesh_refuses(
    keyed: Keyed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await client.print_models(keyed.address) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err


async def test_the_client_sends_the_key(keyed: Keyed, capsys: pytest.CaptureFixture[str]) -> None:
    assert await client.print_models(keyed.address, api_key=keyed.key) == 0
    assert "emulator/echo" in capsys.readouterr().out.split()
    status = await client.chat_to_terminal(
        keyed.address, "with a key", model="emulator/echo", api_key=keyed.key
    )
    out = capsys.readouterr()
    assert status == 0, out.err
    assert out.out == "with a key"


async def test_llmesh_chat_takes_api_key_flag(keyed: Keyed) -> None:
    status, out, err = await _llmesh(
        "chat", "flag key", "--address", keyed.address, "--api-key", keyed.key
    )
    assert status == 0, err
    assert out.strip() == "flag key"


async def test_llmesh_models_takes_the_key_from_the_environment(keyed: Keyed) -> None:
    status, out, err = await _llmesh(
        "models", "--address", keyed.address, env={"LLMESH_API_KEY": keyed.key}
    )
    assert status == 0, err
    assert "emulator/echo" in out.split()
    status, _, err = await _llmesh("models", "--address", keyed.address)
    assert status == 1
    assert "UNAUTHENTICATED" in err


async def test_a_key_created_while_the_mesh_runs_switches_authentication_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Started with no keys (auth off), the orchestrator requires one once a key exists."""
    async with _orchestrator(tmp_path) as address:
        status, text = await keys_command(
            f"sqlite:///{tmp_path}/llmesh.db",
            "create",
            tenant="acme",
            name="",
            key_id=None,
            json_output=False,
        )
        assert status == 0 and "no restart needed" in text
        key = next(w for w in text.split() if w.startswith("llm_"))
        assert await client.print_models(address) == 1
        assert "UNAUTHENTICATED" in capsys.readouterr().err
        assert await client.print_models(address, api_key=key) == 0


async def test_chat_without_an_orchestrator(capsys: pytest.CaptureFixture[str]) -> None:
    address = dead_address()
    status = await client.chat_to_terminal(address, "hi", model="m", timeout=10)
    assert status == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1
    assert lines[0].startswith("llmesh: SERVICE_UNREACHABLE: cannot reach the llmesh orchestrator")
    assert address in lines[0] and "--address" in lines[0]
    assert "UPSTREAM" not in lines[0]


async def test_models_without_an_orchestrator(capsys: pytest.CaptureFixture[str]) -> None:
    address = dead_address()
    assert await client.print_models(address) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the llmesh orchestrator at {address}" in err
    assert "LLMESH_ORCHESTRATOR_ADDRESS" in err
