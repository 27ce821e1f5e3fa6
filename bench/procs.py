"""Starting and stopping the processes under test: the upstream, the orchestrator, the gateway.

Each runs as its own process (``taskset``-pinned when possible), logs to a file in the run's
temporary directory, and is stopped with SIGTERM, then SIGKILL after a bound.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: the working directory of every child process."""


class StartError(RuntimeError):
    """A process did not become ready in time."""


@dataclass
class Service:
    """A running child process."""

    name: str
    proc: subprocess.Popen[bytes]
    started: float
    """`time.perf_counter` just before the process was spawned."""
    log: Path

    @property
    def pid(self) -> int:
        """The process id (taskset replaces itself with the command, so it is the service's)."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        """The end of the process's log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    pin: Sequence[str],
    logs: Path,
    env: Mapping[str, str] | None = None,
) -> Service:
    """Start `argv` (behind the `pin` prefix) with its output in ``logs/<name>.log``."""
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        started = perf_counter()
        proc = subprocess.Popen(
            [*pin, *argv],
            cwd=ROOT,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Service(name, proc, started, log)


async def wait_for_port(service: Service, port: int, timeout: float) -> None:
    """Return once ``127.0.0.1:port`` accepts connections; raise if the service dies first."""
    deadline = perf_counter() + timeout
    while perf_counter() < deadline:
        if not service.alive():
            raise StartError(
                f"{service.name} exited with {service.proc.returncode}:\n{service.tail()}"
            )
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.005)
            continue
        writer.close()
        return
    raise StartError(f"{service.name} did not listen on port {port} within {timeout} s")


async def start(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    pin: Sequence[str],
    logs: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Service:
    """`spawn`, then wait until it listens on `port`; stopped again if it never does."""
    service = spawn(name, argv, pin=pin, logs=logs, env=env)
    try:
        await wait_for_port(service, port, timeout=timeout)
    except BaseException:
        service.stop()
        raise
    return service


def python_argv(module: str, *args: str) -> list[str]:
    """``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def llmesh_argv(*args: str) -> list[str]:
    """The ``llmesh`` command of this environment (or ``python -m llmesh.services.cli``)."""
    script = Path(sys.executable).with_name("llmesh")
    if script.exists():
        return [str(script), *args]
    return python_argv("llmesh.services.cli", *args)


PASSED_THROUGH = ("LLMESH_EVENT_LOOP", "LLMESH_GC")
"""llmesh settings that reach the services under test, so a run can compare them."""


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without credentials, llmesh settings or OpenTelemetry
    settings (so telemetry is off unless a run turns it on), plus `extra`.

    The runtime switches in `PASSED_THROUGH` are kept.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ANTHROPIC_", "LLMESH_", "OTEL_")) or k in PASSED_THROUGH
    }
    env.update(extra)
    return env
