"""`llmesh usage` finds the default ledger from any directory, and says when there is none."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmesh.services.common.config import default_database_url
from llmesh.services.ledger import SqliteStore
from llmesh.services.ledger.stores import sqlite_path
from tests.ledger.conftest import make_record

LLMESH = str(Path(sys.executable).parent / "llmesh")


def _default_path(data_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    path = sqlite_path(default_database_url())
    assert path is not None and path.startswith(str(data_home))
    return path


def _usage(cwd: Path) -> subprocess.CompletedProcess[str]:
    """``llmesh usage`` run in `cwd` with no configuration (the environment names XDG_DATA_HOME)."""
    env = {k: v for k, v in os.environ.items() if k != "LLMESH_DATABASE_URL"}
    env["LLMESH_CONFIG"] = str(cwd / "none.yaml")
    (cwd / "none.yaml").write_text("")
    return subprocess.run(
        [LLMESH, "usage"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_usage_reads_the_default_ledger_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _default_path(tmp_path / "data", monkeypatch)

    async def write() -> None:
        store = SqliteStore(path)  # where the services write by default
        try:
            await store.write([make_record(1)])
        finally:
            await store.aclose()

    asyncio.run(write())
    elsewhere = tmp_path / "some" / "other" / "dir"
    elsewhere.mkdir(parents=True)
    out = _usage(elsewhere)
    assert out.returncode == 0, out.stderr
    assert "acme" in out.stdout and "(no usage recorded)" not in out.stdout


def test_usage_without_a_ledger_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _default_path(tmp_path / "data", monkeypatch)
    out = _usage(tmp_path)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.startswith(f"llmesh usage: no usage ledger at {path}")
    assert len(out.stderr.strip().splitlines()) == 1
    assert not Path(path).exists()
