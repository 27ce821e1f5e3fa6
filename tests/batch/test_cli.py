"""``llmesh batch`` against a real orchestrator: submit a file and wait with the progress
bar, status, results to a file, cancel and retry-dead answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format

from llmesh.services.batch.cli import batch_command
from llmesh.services.cli import _parser
from llmesh.services.orchestrator.server import OrchestratorServer, serve
from tests.batch.conftest import chat_item
from tests.batch.test_servicer import _config
from tests.support.mesh import Mesh


@pytest.fixture
async def server(mesh: Mesh, tmp_path: Path) -> AsyncIterator[OrchestratorServer]:
    s = await serve(_config(mesh, tmp_path), address="127.0.0.1:0", env=mesh.env())
    try:
        yield s
    finally:
        await s.stop(1)


async def _run(server: OrchestratorServer, *argv: str) -> int:
    args = _parser().parse_args(["batch", *argv])
    return await batch_command(args, f"127.0.0.1:{server.port}", api_key=None, poll_interval=0.05)


async def test_submit_wait_status_results(
    server: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = tmp_path / "items.jsonl"
    lines = [json_format.MessageToJson(chat_item(f"k{i}", model=""), indent=None) for i in range(8)]
    items.write_text("\n".join(lines) + "\n")
    code = await _run(
        server, "submit", str(items), "--model", "emulator/echo", "--metadata", "job=x", "--wait"
    )
    out = capsys.readouterr().out
    assert code == 0
    batch_id = out.splitlines()[0]
    assert batch_id.startswith("batch-")
    assert f"{batch_id} completed: 8/8 completed" in out

    assert await _run(server, "status", batch_id) == 0
    assert "completed: 8/8" in capsys.readouterr().out

    target = tmp_path / "out.jsonl"
    assert await _run(server, "results", batch_id, "--out", str(target)) == 0
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert sorted(r["customId"] for r in rows) == [f"k{i}" for i in range(8)]
    assert all(r["state"] == "BATCH_ITEM_STATE_SUCCEEDED" for r in rows)

    assert await _run(server, "dead", batch_id) == 0
    assert capsys.readouterr().out == ""  # none died
    assert await _run(server, "retry-dead", batch_id) == 0
    assert "0 item(s) retried" in capsys.readouterr().out
    assert await _run(server, "cancel", batch_id) == 1
    assert "BATCH_STATE_CONFLICT" in capsys.readouterr().err
    assert await _run(server, "status", "batch-none") == 1
    assert "BATCH_NOT_FOUND" in capsys.readouterr().err


async def test_submit_reports_a_bad_file(
    server: OrchestratorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "a", "chat": {"model": "emulator/echo"}}\n')
    assert await _run(server, "submit", str(bad)) == 1
    assert "INVALID_REQUEST" in capsys.readouterr().err
    assert await _run(server, "submit", str(tmp_path / "missing.jsonl")) == 1
    assert "missing.jsonl" in capsys.readouterr().err


async def test_dead_letters_are_shown_with_their_trail(
    mesh: Mesh, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = await serve(_config(mesh, tmp_path, max_attempts=2), address="127.0.0.1:0", env=mesh.env())
    try:
        mesh.set_fault("echo-cli-doomed", "server_error")
        items = tmp_path / "items.jsonl"
        doomed = chat_item("doomed", model="emulator/echo-cli-doomed")
        items.write_text(json_format.MessageToJson(doomed, indent=None) + "\n")
        assert await _run(s, "submit", str(items), "--wait") == 0  # completed, with a dead item
        batch_id = capsys.readouterr().out.splitlines()[0]
        assert await _run(s, "dead", batch_id) == 0
        (letter,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert letter["item"]["customId"] == "doomed"
        assert [a["number"] for a in letter["trail"]] == [1, 2]
    finally:
        async with httpx.AsyncClient() as client:
            await client.delete(
                f"{mesh.emulator_url}/emulator/faults", params={"model": "echo-cli-doomed"}
            )
        await s.stop(1)
