"""Keeping a service's worker processes running (what `llmesh up` does with each service).

A `WorkerGroup` starts N processes of one service and knows each is serving when it writes
to the pipe named by ``LLMESH_READY_FD`` (`llmesh.services.common.workers.notify_ready`):
with N processes on one port, a connect probe cannot tell which of them answered. A worker
that exits is started again after a backoff that doubles with each crash in a row (a
worker that served `STEADY` seconds starts the count again); one that exits
`MAX_CRASHES` times in a row without serving that long gives the group up, so a
configuration that can never work stops `llmesh up` instead of looping forever.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

from llmesh.services.common.ready import READY_FD

__all__ = ["MAX_CRASHES", "STEADY", "WorkerGroup"]

MAX_CRASHES = 5
"""Crashes in a row (each within `STEADY` seconds of its start) after which a group gives up."""
STEADY = 30.0
"""Seconds a worker must run for its next crash to count as the first in a row."""
FIRST_BACKOFF = 0.25
"""Seconds before the first restart; doubled for each further crash in a row."""
MAX_BACKOFF = 8.0
"""The longest wait before a restart."""


def _say(text: str) -> None:
    print(f"llmesh: {text}", file=sys.stderr, flush=True)


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    ready_fd: int | None = None
    ready: bool = False
    started_at: float = 0.0
    crashes: int = 0
    restart_at: float | None = None
    """When to start it again after a crash (None: running, or not started yet)."""
    last_status: int | None = field(default=None)


class WorkerGroup:
    """The processes of one service: `count` workers, each from ``command(index)``."""

    def __init__(
        self,
        name: str,
        count: int,
        command: Callable[[int], Sequence[str]],
        *,
        preexec_fn: Callable[[], None] | None = None,
        output: IO[bytes] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`output` takes the workers' stdout and stderr (None: this process's); `env` is
        their environment (None: this process's)."""
        self.name = name
        self._output = output
        self._env = env
        self.count = count
        self._command = command
        self._preexec_fn = preexec_fn
        self._workers = [_Worker(i) for i in range(count)]

    def label(self, index: int) -> str:
        """How a log line names a worker: the service alone when it has one process."""
        return self.name if self.count == 1 else f"{self.name} worker {index}"

    @property
    def pids(self) -> list[int]:
        """The process ids of the running workers."""
        return [w.proc.pid for w in self._workers if w.proc and w.proc.poll() is None]

    def _spawn(self, worker: _Worker) -> None:
        read, write = os.pipe()
        env = dict(os.environ if self._env is None else self._env) | {READY_FD: str(write)}
        try:
            # a process group of its own: a terminal's Ctrl-C reaches only `llmesh up`,
            # which then stops the services one by one
            worker.proc = subprocess.Popen(
                list(self._command(worker.index)),
                env=env,
                pass_fds=(write,),
                preexec_fn=self._preexec_fn,
                process_group=0,
                stdout=self._output,
                stderr=self._output,
            )
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        worker.ready_fd = read
        worker.ready = False
        worker.started_at = time.monotonic()
        worker.restart_at = None

    def _check_ready(self, worker: _Worker, timeout: float) -> bool:
        """Whether `worker` said it serves (waiting up to `timeout` seconds for it)."""
        if worker.ready or worker.ready_fd is None:
            return worker.ready
        readable, _, _ = select.select([worker.ready_fd], [], [], timeout)
        if readable:
            data = os.read(worker.ready_fd, 64)
            os.close(worker.ready_fd)
            worker.ready_fd = None
            worker.ready = bool(data)  # EOF without a word: it exited before serving
        return worker.ready

    def start(self, timeout: float = 30.0) -> str | None:
        """Start every worker and wait until each serves; a line saying why not, else None."""
        for worker in self._workers:
            self._spawn(worker)
        for worker in self._workers:
            end = time.monotonic() + timeout
            while not self._check_ready(worker, 0.05):
                assert worker.proc is not None
                if worker.proc.poll() is not None or time.monotonic() >= end:
                    return f"{self.label(worker.index)} failed to start"
        return None

    def watch(self) -> str | None:
        """Restart workers that exited (after their backoff); a line when the group gives up."""
        now = time.monotonic()
        for worker in self._workers:
            if worker.restart_at is not None:
                if now >= worker.restart_at:
                    self._spawn(worker)
                    _say(f"{self.label(worker.index)} restarted (pid {worker.proc.pid})")  # type: ignore[union-attr]
                continue
            if worker.proc is None:
                continue
            self._check_ready(worker, 0)
            status = worker.proc.poll()
            if status is None:
                continue
            self._close_pipe(worker)
            steady = worker.ready and now - worker.started_at >= STEADY
            worker.crashes = 1 if steady else worker.crashes + 1
            worker.last_status = status
            what = f"{self.label(worker.index)} (pid {worker.proc.pid}) exited with {status}"
            if worker.crashes >= MAX_CRASHES:
                return f"{what}; it keeps crashing ({worker.crashes} times in a row), giving up"
            delay = min(FIRST_BACKOFF * 2 ** (worker.crashes - 1), MAX_BACKOFF)
            _say(f"{what}; restarting it in {delay:g} s")
            worker.restart_at = now + delay
        return None

    def _close_pipe(self, worker: _Worker) -> None:
        if worker.ready_fd is not None:
            os.close(worker.ready_fd)
            worker.ready_fd = None

    def stop(self, grace: float) -> None:
        """SIGTERM every worker (they drain at once), wait up to `grace`, kill the rest."""
        running = [w for w in self._workers if w.proc is not None and w.proc.poll() is None]
        for worker in running:
            worker.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        end = time.monotonic() + grace
        for worker in running:
            assert worker.proc is not None
            try:
                worker.proc.wait(timeout=max(end - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                _say(f"{self.label(worker.index)} did not stop; killing it")
                worker.proc.kill()
                worker.proc.wait()
        for worker in self._workers:
            worker.restart_at = None
            self._close_pipe(worker)
