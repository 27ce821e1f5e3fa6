"""`llmesh serve orchestrator` with ``orchestrator.http.port``: one process, gRPC and /v1."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from bench.ports import free_port


def test_serve_orchestrator_answers_v1_on_its_http_port(tmp_path: Path) -> None:
    config = tmp_path / "llmesh.yaml"
    config.write_text("")
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "LLMESH_CONFIG": str(config),
        "LLMESH_DATABASE_URL": f"sqlite:///{tmp_path}/llmesh.db",
        "LLMESH_LOG_LEVEL": "WARNING",
        "LLMESH_ORCHESTRATOR_ADDRESS": "127.0.0.1:0",
        "LLMESH_ORCHESTRATOR_HTTP_PORT": str(port),
    }
    with subprocess.Popen(
        [sys.executable, "-m", "llmesh.services.cli", "serve", "orchestrator"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        _check(proc, port)


def _check(proc: subprocess.Popen[str], port: int) -> None:
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[1].strip() == f"direct HTTP path listening on http://127.0.0.1:{port}", lines
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
        assert models.status_code == 200
        assert any(m["id"] == "emulator/echo" for m in models.json()["data"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
