"""What a worker of ``llmesh up --workers N`` changes, and what N workers refuse to run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmesh.services.common.config import ConfigError, load_config
from llmesh.services.common.workers import (
    READY_FD,
    WorkerSlot,
    default_workers,
    notify_ready,
    worker_config,
    workers_problem,
)


def _config(tmp_path: Path, text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "llmesh.yaml"
    path.write_text(text)
    return load_config(path, env=env or {})


def test_a_slot_is_parsed_from_i_of_n() -> None:
    assert WorkerSlot.parse("1/4") == WorkerSlot(1, 4)
    assert WorkerSlot.parse("0/1").shared is False
    assert WorkerSlot.parse("0/2").shared is True
    assert str(WorkerSlot(2, 3)) == "2/3"


@pytest.mark.parametrize("text", ["1", "a/2", "2/2", "0/0", "-1/2", "1/"])
def test_a_bad_slot_says_what_was_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"I/N|0 <= I < N"):
        WorkerSlot.parse(text)


def test_the_default_is_the_cores_this_process_may_use() -> None:
    assert default_workers() == len(os.sched_getaffinity(0))


def test_workers_are_read_from_the_file(tmp_path: Path) -> None:
    c = _config(tmp_path, "orchestrator: {workers: 3}\ngateway: {workers: 2}\n")
    assert (c.orchestrator_workers, c.gateway_workers) == (3, 2)
    c = _config(tmp_path, "")
    assert (c.orchestrator_workers, c.gateway_workers) == (None, None)


@pytest.mark.parametrize("value", ["0", "-1", "two", "true", "1.5"])
def test_a_bad_workers_value_names_the_key(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"gateway\.workers: expected a whole number >= 1"):
        _config(tmp_path, f"gateway: {{workers: {value}}}\n")


def test_budgets_without_redis_refuse_more_than_one_orchestrator(tmp_path: Path) -> None:
    c = _config(tmp_path, "budgets: {keys: {k1: {monthly_usd: 10}}}\n")
    assert workers_problem(c, 1) is None
    problem = workers_problem(c, 2)
    assert problem is not None and "set budgets.redis_url" in problem
    shared = _config(
        tmp_path, "budgets: {keys: {k1: {monthly_usd: 10}}, redis_url: 'redis://127.0.0.1:1'}\n"
    )
    assert workers_problem(shared, 8) is None


def test_rate_limits_and_the_cache_without_redis_run_per_worker(tmp_path: Path) -> None:
    c = _config(tmp_path, "rate_limits: {tenants: {'*': {requests_per_minute: 60}}}\n")
    assert workers_problem(c, 4) is None


def test_orchestrator_worker_i_serves_metrics_on_port_plus_i(tmp_path: Path) -> None:
    c = _config(tmp_path, "telemetry: {metrics: {enabled: true, orchestrator_port: 9500}}\n")
    ports = [
        worker_config(c, "orchestrator", WorkerSlot(i, 3)).telemetry.metrics.orchestrator_port
        for i in range(3)
    ]
    assert ports == [9500, 9501, 9502]
    assert worker_config(c, "processor", WorkerSlot(0, 1)) is c


def test_metrics_ports_of_workers_must_miss_the_processors(tmp_path: Path) -> None:
    c = _config(tmp_path, "telemetry: {metrics: {enabled: true}}\n")  # 9464 and 9465
    assert workers_problem(c, 1) is None
    problem = workers_problem(c, 2)
    assert problem is not None and "telemetry.metrics.processor_port" in problem
    off = _config(tmp_path, "")
    assert workers_problem(off, 2) is None  # metrics off: no port to collide


def test_gateway_workers_turn_the_prometheus_endpoint_off(tmp_path: Path) -> None:
    c = _config(tmp_path, "telemetry: {metrics: {enabled: true, otlp: true}}\n")
    one = worker_config(c, "gateway", WorkerSlot(0, 1)).telemetry.metrics
    assert one.prometheus and one.enabled
    shared = worker_config(c, "gateway", WorkerSlot(1, 2)).telemetry.metrics
    assert not shared.prometheus and shared.enabled and shared.otlp
    pull_only = _config(tmp_path, "telemetry: {metrics: {enabled: true}}\n")
    assert not worker_config(pull_only, "gateway", WorkerSlot(0, 2)).telemetry.metrics.enabled


def test_notify_ready_writes_once_to_the_named_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    read, write = os.pipe()
    monkeypatch.setenv(READY_FD, str(write))
    notify_ready()
    notify_ready()  # forgotten after the first time: nothing more, no error
    assert os.read(read, 64) == b"ready\n"
    assert os.read(read, 64) == b""  # the write end is closed
    os.close(read)
    assert READY_FD not in os.environ
