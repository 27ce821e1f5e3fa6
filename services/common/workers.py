"""One service as N worker processes sharing its port (``llmesh up --workers N``).

A worker is an ordinary ``llmesh serve <service>`` process told its place (``--worker I/N``):
with N > 1 it binds its port with ``SO_REUSEPORT``, so the kernel spreads new connections
over the N processes, each with its own event loop. What a worker changes for being one of
many is decided here (`worker_config`), and what `llmesh up` refuses before starting any
(`workers_problem`): state kept in process is per worker, so budgets without Redis would
let N workers each spend the whole cap.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

from llmesh.services.common.config import Config
from llmesh.services.common.ready import READY_FD, notify_ready

__all__ = [
    "READY_FD",
    "WorkerSlot",
    "default_workers",
    "notify_ready",
    "worker_config",
    "workers_problem",
]

log = logging.getLogger("llmesh.workers")


@dataclass(frozen=True)
class WorkerSlot:
    """Worker `index` (from 0) of `count` processes serving one port."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"worker {self.index}/{self.count}: expected I/N with 0 <= I < N")

    @classmethod
    def parse(cls, text: str) -> WorkerSlot:
        """``"I/N"`` as a slot; a `ValueError` says what was expected."""
        index, slash, count = text.partition("/")
        if not (slash and index.isdigit() and count.isdigit()):
            raise ValueError(f"--worker {text!r}: expected I/N, e.g. 0/4")
        return cls(int(index), int(count))

    @property
    def shared(self) -> bool:
        """Whether other workers share the port (it is then bound with ``SO_REUSEPORT``)."""
        return self.count > 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def default_workers() -> int:
    """The cores this process may run on (``os.process_cpu_count``, else its affinity)."""
    count = getattr(os, "process_cpu_count", None)
    if count is not None:
        return int(count() or 1)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_config(config: Config, service: str, slot: WorkerSlot) -> Config:
    """The configuration worker `slot` of `service` runs with.

    Orchestrator worker I serves ``/metrics`` on ``telemetry.metrics.orchestrator_port + I``
    (each process has its own counters). Gateway workers share the HTTP port that also
    answers ``/metrics``, so a scrape would reach a random worker: with more than one, the
    Prometheus endpoint is off (OTLP, when configured, still pushes every worker's metrics).
    """
    metrics = config.telemetry.metrics
    if service == "orchestrator" and slot.index and metrics.orchestrator_port:
        metrics = dataclasses.replace(
            metrics, orchestrator_port=metrics.orchestrator_port + slot.index
        )
    elif service == "gateway" and slot.shared and metrics.enabled and metrics.prometheus:
        log.warning(
            "gateway worker %s: /metrics is off with more than one gateway worker (a scrape "
            "would reach any one of them); use OTLP or --workers 1 for gateway metrics",
            slot,
        )
        metrics = dataclasses.replace(metrics, prometheus=False, enabled=metrics.otlp)
    else:
        return config
    telemetry = dataclasses.replace(config.telemetry, metrics=metrics)
    return dataclasses.replace(config, telemetry=telemetry)


def workers_problem(config: Config, orchestrators: int) -> str | None:
    """Why `orchestrators` orchestrator workers cannot run this configuration, or None."""
    if orchestrators <= 1:
        return None
    budgets = config.policy.budgets
    if (budgets.tenants or budgets.keys or budgets.sessions) and budgets.redis_url is None:
        return (
            f"budgets need Redis with {orchestrators} orchestrator workers (each would hold "
            "the whole cap): set budgets.redis_url, or run with --workers 1"
        )
    metrics = config.telemetry.metrics
    first = metrics.orchestrator_port
    if metrics.enabled and metrics.prometheus and first:
        ports = range(first, first + orchestrators)
        if metrics.processor_port in ports:
            return (
                f"orchestrator workers serve /metrics on ports {first}-{ports[-1]}, which "
                f"takes the processor's {metrics.processor_port}: move "
                "telemetry.metrics.processor_port or orchestrator_port"
            )
    return None
