"""The gateway's pool of orchestrator channels: calls dealt to the least busy channel, and,
against an orchestrator serving its port from two worker processes, calls from one gateway
reaching both workers (one channel, one connection, reaches only one)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench.ports import free_port, free_ports
from llmesh.gateway import GatewaySettings, start
from llmesh.gateway.channel_pool import ChannelPool
from llmesh.gateway.settings import orchestrator_channels
from llmesh.services.common.config import load_config

BIN = Path(sys.executable).parent


class _Call:
    """A call object as grpc.aio gives: done callbacks run when it ends."""

    def __init__(self, channel: int) -> None:
        self.channel = channel
        self._callbacks: list[Callable[[Any], None]] = []

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._callbacks.append(callback)

    def finish(self) -> None:
        for callback in self._callbacks:
            callback(self)


class _Stub:
    """A generated stub's shape: one attribute per method, set in ``__init__``."""

    def __init__(self, channel: Any) -> None:
        self.Chat = lambda request, **kw: _Call(channel)
        self.StreamChat = lambda request, **kw: _Call(channel)


def _pool(size: int) -> tuple[ChannelPool, Any]:
    pool = ChannelPool(list(range(size)))  # type: ignore[arg-type]
    return pool, pool.stub(_Stub)


def test_idle_channels_take_calls_in_turn() -> None:
    pool, stub = _pool(3)
    calls = [stub.Chat("hi") for _ in range(6)]
    assert [c.channel for c in calls] == [0, 1, 2, 0, 1, 2]
    assert pool.in_flight == (2, 2, 2)
    for call in calls:
        call.finish()
    assert pool.in_flight == (0, 0, 0)
    done = []
    for _ in range(4):  # sequential calls (each done before the next) rotate too
        call = stub.StreamChat("hi")
        done.append(call.channel)
        call.finish()
    assert done == [0, 1, 2, 0]


def test_a_call_goes_to_the_channel_with_the_fewest_in_flight() -> None:
    pool, stub = _pool(4)
    calls = [stub.Chat("hi") for _ in range(8)]  # two on each
    for call in calls:
        if call.channel == 2:
            call.finish()  # channel 2's worker answered sooner
    assert pool.in_flight == (2, 2, 0, 2)
    assert [stub.Chat("hi").channel for _ in range(2)] == [2, 2]
    assert pool.in_flight == (2, 2, 2, 2)


def test_one_channel_is_called_through_its_own_stub() -> None:
    _, stub = _pool(1)
    assert isinstance(stub, _Stub)
    assert stub.Chat("hi").channel == 0


def test_a_pool_needs_a_channel() -> None:
    with pytest.raises(ValueError, match="at least one channel"):
        ChannelPool([])


def test_channels_cover_the_orchestrator_workers_by_default(tmp_path: Path) -> None:
    path = tmp_path / "llmesh.yaml"
    path.write_text("")
    assert orchestrator_channels(load_config(path, env={})) == 1
    assert orchestrator_channels(load_config(path, env={}), workers=3) == 12  # llmesh up's N
    env = {"LLMESH_GATEWAY_ORCHESTRATOR_CHANNELS": "5"}
    assert orchestrator_channels(load_config(path, env=env), workers=3) == 5
    path.write_text("orchestrator: {workers: 2}\n")
    assert GatewaySettings.from_config(load_config(path, env={})).orchestrator_channels == 8
    path.write_text("orchestrator: {workers: 2}\ngateway: {orchestrator_channels: 3}\n")
    assert orchestrator_channels(load_config(path, env={})) == 3
    path.write_text("gateway: {orchestrator_channels: 0}\n")
    with pytest.raises(ValueError, match=r"gateway\.orchestrator_channels: expected a whole"):
        load_config(path, env={})


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90  # a busy machine starts slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on {port}:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """An emulator and an orchestrator as two workers sharing a port (``serve orchestrator
    --worker I/2``), each with its own ``/metrics``; yields its address and those URLs."""
    tmp = tmp_path_factory.mktemp("two-workers")
    emulator, orchestrator = free_port(), free_port()
    metrics = free_ports(2)  # worker I serves /metrics on metrics + I
    config = {
        "emulator": {"host": "127.0.0.1", "port": emulator},
        "orchestrator": {"address": f"127.0.0.1:{orchestrator}", "shutdown_grace": 1},
        "telemetry": {
            "metrics": {
                "enabled": True,
                "orchestrator_port": metrics,
                "processor_port": free_port(),
            }
        },
    }
    (tmp / "llmesh.yaml").write_text(yaml.safe_dump(config))
    drop = ("LLMESH_", "OTEL_", "OPENAI_", "ANTHROPIC_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)} | {
        "LLMESH_CONFIG": str(tmp / "llmesh.yaml"),
        "LLMESH_DATABASE_URL": f"sqlite:///{tmp / 'llmesh.db'}",
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, args, port in (
            ("emulator", ["emulator"], emulator),
            ("worker0", ["orchestrator", "--worker", "0/2"], metrics),
            ("worker1", ["orchestrator", "--worker", "1/2"], metrics + 1),
        ):
            log = tmp / f"{name}.log"
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [str(BIN / "llmesh"), "serve", *args], env=env, stdout=out, stderr=out
                    )
                )
            _wait_listening(port, procs[-1], log)
        _wait_listening(orchestrator, procs[1], tmp / "worker0.log")
        yield (
            f"127.0.0.1:{orchestrator}",
            [f"http://127.0.0.1:{p}/metrics" for p in (metrics, metrics + 1)],
        )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait()


def _calls(url: str) -> float:
    """The worker's ``llmesh_calls_total``, summed over its labels."""
    text = httpx.get(url, timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "llmesh_calls_total"
    )


@pytest.mark.parametrize("channels", [1, 16])
async def test_calls_from_one_gateway_reach_every_orchestrator_worker(
    two_workers: tuple[str, list[str]], channels: int
) -> None:
    address, metrics = two_workers
    before = [_calls(url) for url in metrics]
    settings = GatewaySettings(orchestrator_address=address, orchestrator_channels=channels)
    gateway = await start(settings)
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
            for i in range(32):
                reply = await http.post(
                    "/v1/chat/completions",
                    json={
                        "model": "emulator/echo",
                        "messages": [{"role": "user", "content": f"{i}"}],
                    },
                )
                assert reply.status_code == 200, reply.text
    finally:
        await gateway.stop()
    served = [_calls(url) - b for url, b in zip(metrics, before, strict=True)]
    assert sum(served) == 32
    if channels == 1:  # one connection: the kernel gave it to one worker, which takes all
        assert sorted(served) == [0, 32]
    else:  # 16 connections, dealt in turn: 2 in 65,536 that the kernel gives one worker all
        assert min(served) > 0, served
