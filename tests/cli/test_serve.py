"""`llmesh serve X` on a non-loopback address: refused without keys, loud with the opt-out.

Nothing here listens on the network: a refused service stops before binding, and the
opt-out runs bind 192.0.2.1 (TEST-NET-1, documentation only, on no interface here), which
fails after the WARNING is logged.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SERVICES = ["orchestrator", "processor", "gateway", "emulator"]


def _env(tmp_path: Path, host: str) -> dict[str, str]:
    config = tmp_path / "llmesh.yaml"
    config.write_text("")
    return {
        "PATH": "/usr/bin:/bin",
        "LLMESH_CONFIG": str(config),
        "LLMESH_DATABASE_URL": f"sqlite:///{tmp_path}/llmesh.db",
        "LLMESH_LOG_LEVEL": "WARNING",
        "LLMESH_LOG_FORMAT": "text",  # the lines asserted on below are the readable form
        "LLMESH_ORCHESTRATOR_ADDRESS": f"{host}:0",
        "LLMESH_PROCESSOR_ADDRESS": f"{host}:0",
        "LLMESH_GATEWAY_HOST": host,
        "LLMESH_GATEWAY_PORT": "0",
        "LLMESH_EMULATOR_HOST": host,
        "LLMESH_EMULATOR_PORT": "0",
    }


def _llmesh(tmp_path: Path, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmesh.services.cli", *args],
        env=_env(tmp_path, host),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("service", SERVICES)
def test_no_keys_and_a_network_bind_is_refused_in_one_line(tmp_path: Path, service: str) -> None:
    done = _llmesh(tmp_path, "0.0.0.0", "serve", service)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"llmesh: {service}: refusing to listen on 0.0.0.0")
    assert "--allow-unauthenticated" in lines[0]


@pytest.mark.parametrize("service", SERVICES)
def test_the_opt_out_is_logged_as_a_warning(tmp_path: Path, service: str) -> None:
    done = _llmesh(tmp_path, "192.0.2.1", "--allow-unauthenticated", "serve", service)
    assert done.returncode != 0  # the address is on no interface
    assert f"WARNING {service} listens on 192.0.2.1" in done.stderr
    assert "WITHOUT AUTHENTICATION" in done.stderr


def test_up_passes_the_opt_out_to_every_service(tmp_path: Path) -> None:
    """`llmesh --allow-unauthenticated up` must reach the services it starts."""
    from llmesh.services.cli import _child_command
    from llmesh.services.common.config import load_config, with_overrides

    config = load_config(None, env={})
    plain = _child_command(config, None)
    assert "--allow-unauthenticated" not in plain
    opened = _child_command(with_overrides(config, allow_unauthenticated=True), "c.yaml")
    assert opened[-3:] == ["--config", "c.yaml", "--allow-unauthenticated"]


def test_up_refuses_a_network_bind_before_starting_anything(tmp_path: Path) -> None:
    """`LLMESH_GATEWAY_HOST=0.0.0.0 llmesh up` with no keys: one line, no service started."""
    env = _env(tmp_path, "127.0.0.1") | {"LLMESH_GATEWAY_HOST": "0.0.0.0"}
    done = subprocess.run(
        [sys.executable, "-m", "llmesh.services.cli", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == "", "nothing may start"
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("llmesh: gateway: refusing to listen on 0.0.0.0")
    assert not (tmp_path / "llmesh.db").exists(), "asking for keys created no database"
