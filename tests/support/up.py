"""Starting `llmesh up` as a user runs it, for the tests that drive the whole mesh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.ports import free_port

BIN = Path(sys.executable).parent
"""Where the environment's ``llmesh`` command lives."""

PROVIDER_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
)
"""The SDKs' variables, kept from the mesh so its providers reach only what the test says."""


def up_ports() -> dict[str, int]:
    """A free port for each service: ``orch``, ``proc``, ``gw``, ``emu``."""
    return {name: free_port() for name in ("orch", "proc", "gw", "emu")}


def up_env(
    tmp: Path, ports: dict[str, int], without_prefixes: tuple[str, ...] = ()
) -> dict[str, str]:
    """This process's environment, less `PROVIDER_VARIABLES` and any variable starting with
    one of `without_prefixes`, plus the services' ports, the configuration file
    ``tmp/llmesh.yaml`` (written by the caller) and a ledger in `tmp`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in PROVIDER_VARIABLES and not k.startswith(without_prefixes)
    }
    return env | {
        "LLMESH_ORCHESTRATOR_ADDRESS": f"127.0.0.1:{ports['orch']}",
        "LLMESH_PROCESSOR_ADDRESS": f"127.0.0.1:{ports['proc']}",
        "LLMESH_GATEWAY_PORT": str(ports["gw"]),
        "LLMESH_EMULATOR_PORT": str(ports["emu"]),
        "LLMESH_CONFIG": str(tmp / "llmesh.yaml"),
        "LLMESH_DATABASE_URL": f"sqlite:///{tmp}/llmesh.db",
        "PYTHONUNBUFFERED": "1",
    }


def start_up(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """``llmesh up *args`` under `env`, once it says the mesh is up; the lines it printed.

    Fails the test with that output if it ends first.
    """
    proc = subprocess.Popen(
        [str(BIN / "llmesh"), "up", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if "mesh is up" in line:
            return proc, lines
    proc.kill()
    proc.wait()
    proc.stdout.close()  # left open, it is closed whenever a later collection finds it
    pytest.fail("llmesh up did not come up:\n" + "".join(lines))
