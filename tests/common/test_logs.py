"""LLMESH_LOG_LEVEL: any case of a known level; anything else is one clear line, no traceback.

The format: JSON off a terminal, readable lines on one, LLMESH_LOG_FORMAT either way; the
level per service from the configuration unless the environment names one.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from llmesh.services.common.logs import apply_service_levels, configure_logging, iso_milliseconds
from llmesh.services.common.telemetry_settings import LogSettings


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


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def root(monkeypatch: pytest.MonkeyPatch) -> logging.Logger:
    logger = logging.getLogger()
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logger.level)
    return logger


def test_off_a_terminal_each_record_is_one_json_object(root: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging({}, stream=out)
    logging.getLogger("llmesh.x").info("hello %s", "there", extra={"request_id": "req_1"})
    logging.getLogger("llmesh.calls").info(
        "call", extra={"call": {"outcome": "ok", "cost_usd": 0.5}}
    )
    logging.getLogger().handlers[0].flush()  # the call log's lines are written in batches
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "hello there" and first["request_id"] == "req_1"
    assert (first["level"], first["logger"]) == ("INFO", "llmesh.x")
    assert (second["outcome"], second["cost_usd"]) == ("ok", 0.5)  # the call's fields, flat


def test_on_a_terminal_records_are_readable_lines(root: logging.Logger) -> None:
    out = _Tty()
    configure_logging({}, stream=out)
    logging.getLogger("llmesh.x").warning("careful")
    assert out.getvalue().rstrip().endswith("llmesh.x WARNING careful")


def test_the_format_can_be_forced_either_way(root: logging.Logger) -> None:
    tty, pipe = _Tty(), io.StringIO()
    configure_logging({"LLMESH_LOG_FORMAT": "json"}, stream=tty)
    logging.getLogger("llmesh.x").warning("a")
    root.handlers = []
    configure_logging({"LLMESH_LOG_FORMAT": "text"}, stream=pipe)
    logging.getLogger("llmesh.x").warning("b")
    assert json.loads(tty.getvalue())["message"] == "a"
    assert pipe.getvalue().rstrip().endswith("llmesh.x WARNING b")
    with pytest.raises(SystemExit, match="LLMESH_LOG_FORMAT='xml'"):
        configure_logging({"LLMESH_LOG_FORMAT": "xml"}, stream=pipe)


def test_a_service_takes_its_level_from_config_unless_the_environment_names_one(
    root: logging.Logger,
) -> None:
    section = LogSettings(level="WARNING", levels={"orchestrator": "DEBUG"})
    apply_service_levels(section, "orchestrator", {})
    assert root.level == logging.DEBUG
    apply_service_levels(section, "gateway", {})
    assert root.level == logging.WARNING
    apply_service_levels(section, "gateway", {"LLMESH_GATEWAY_LOG_LEVEL": "error"})
    assert root.level == logging.ERROR
    root.setLevel(logging.INFO)
    apply_service_levels(section, "gateway", {"LLMESH_LOG_LEVEL": "INFO"})
    assert root.level == logging.INFO  # the global variable, applied at start-up, wins
    with pytest.raises(SystemExit, match=r"telemetry\.logs\.levels\.processor='loud'"):
        apply_service_levels(LogSettings(levels={"processor": "loud"}), "processor", {})


@given(st.floats(min_value=0, max_value=2**33, allow_nan=False))
@example(1_764_000_000.9999996)  # rounds up into the next second
@example(1_764_000_000.0004995)
@example(0.0)
def test_record_times_are_written_as_datetime_writes_them(created: float) -> None:
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert iso_milliseconds(created) == expected
    assert iso_milliseconds(created) == expected  # the second's text remembered
