"""The terminal client says plainly when the orchestrator cannot be reached."""

from __future__ import annotations

import socket

import pytest

from services import client


def _dead_address() -> str:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def test_chat_without_an_orchestrator(capsys: pytest.CaptureFixture[str]) -> None:
    address = _dead_address()
    status = await client.chat_to_terminal(address, "hi", model="m", timeout=10)
    assert status == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1
    assert lines[0].startswith("llmesh: SERVICE_UNREACHABLE: cannot reach the llmesh orchestrator")
    assert address in lines[0] and "--address" in lines[0]
    assert "UPSTREAM" not in lines[0]


async def test_models_without_an_orchestrator(capsys: pytest.CaptureFixture[str]) -> None:
    address = _dead_address()
    assert await client.print_models(address) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the llmesh orchestrator at {address}" in err
    assert "LLMESH_ORCHESTRATOR_ADDRESS" in err
