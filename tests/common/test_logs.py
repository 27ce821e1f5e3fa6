"""LLMESH_LOG_LEVEL: any case of a known level; anything else is one clear line, no traceback."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from llmesh.services.common.logs import configure_logging


def test_a_bad_level_is_one_clear_line() -> None:
    with pytest.raises(SystemExit) as info:
        configure_logging({"LLMESH_LOG_LEVEL": "loud"})
    assert str(info.value) == (
        "llmesh: LLMESH_LOG_LEVEL='loud' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )


def test_any_case_of_a_level_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    configure_logging({"LLMESH_LOG_LEVEL": "debug"})
    assert root.level == logging.DEBUG


def test_the_command_exits_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llmesh.services.cli", "models"],
        env={"LLMESH_LOG_LEVEL": "loud", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "LLMESH_LOG_LEVEL='loud'" in done.stderr
