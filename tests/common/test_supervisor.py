"""`WorkerGroup` on plain Python processes: readiness, restarts with backoff, giving up."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from llmesh.services.common import supervisor
from llmesh.services.common.supervisor import WorkerGroup

SERVES = (
    "import os, time; fd = int(os.environ['LLMESH_READY_FD']); "
    "os.write(fd, b'ready'); os.close(fd); time.sleep(60)"
)
NEVER_READY = "import sys; sys.exit(3)"


def _group(code: str, count: int = 2) -> WorkerGroup:
    return WorkerGroup("svc", count, lambda i: [sys.executable, "-c", code])


def _watch_until(group: WorkerGroup, done: object, timeout: float = 30.0) -> str | None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        failure = group.watch()
        if failure is not None or done():  # type: ignore[operator]
            return failure
        time.sleep(0.02)
    pytest.fail("the group did not get there")


def test_a_group_starts_every_worker_and_stops_them_all() -> None:
    group = _group(SERVES)
    assert group.start() is None
    pids = group.pids
    assert len(pids) == 2
    group.stop(5)
    assert group.pids == []
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, 0)  # already reaped by stop


def test_a_worker_that_exits_before_serving_fails_the_start() -> None:
    group = _group(NEVER_READY, count=1)
    try:
        assert group.start() == "svc failed to start"
    finally:
        group.stop(5)


def test_a_killed_worker_is_started_again(capsys: pytest.CaptureFixture[str]) -> None:
    group = _group(SERVES)
    assert group.start() is None
    try:
        victim = group.pids[1]
        os.kill(victim, signal.SIGKILL)
        failure = _watch_until(group, lambda: len(group.pids) == 2 and victim not in group.pids)
        assert failure is None
        err = capsys.readouterr().err
        assert f"llmesh: svc worker 1 (pid {victim}) exited with -9; restarting it in 0.25 s" in err
        assert "llmesh: svc worker 1 restarted (pid " in err
    finally:
        group.stop(5)


def test_a_worker_crashing_again_and_again_gives_the_group_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(supervisor, "FIRST_BACKOFF", 0.01)
    calls: list[int] = []

    def command(i: int) -> list[str]:
        calls.append(i)  # the first start serves; every restart exits at once
        return [sys.executable, "-c", SERVES if len(calls) <= 1 else NEVER_READY]

    group = WorkerGroup("svc", 1, command)
    assert group.start() is None
    try:
        os.kill(group.pids[0], signal.SIGKILL)
        failure = _watch_until(group, lambda: False)
    finally:
        group.stop(5)
    assert failure is not None
    assert failure.endswith(
        f"exited with 3; it keeps crashing ({supervisor.MAX_CRASHES} times in a row), giving up"
    )
    err = capsys.readouterr().err
    assert err.count("restarting it in") == supervisor.MAX_CRASHES - 1
