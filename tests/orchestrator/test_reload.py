"""Configuration hot reload under a streaming load: no stream fails, new calls see the new
routes, a bad file is refused and the config in effect kept, unchanged providers reused."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from llmesh.services.common.config import load_config
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.resilience_settings import RetrySettings
from llmesh.services.core.call import ChatCall
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import Finish, Started, TextDelta
from llmesh.services.core.usage import Usage
from llmesh.services.emulator import EmulatorSettings, start
from llmesh.services.emulator.settings import Latency
from llmesh.services.orchestrator.server import OrchestratorServer, serve
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.orchestrator.scripted import Scripted
from tests.orchestrator.scripted import engine as scripted_engine

STREAMS = 8
TEXT = " ".join(f"w{i}" for i in range(20))  # 20 pieces, 10 ms apart: a stream of ~0.2 s


def _write(path: Path, port: int, body: str, interval: float = 0.05) -> None:
    path.write_text(
        f"""
orchestrator: {{reload_interval: {interval}}}
ledger: {{url: 'sqlite:///{path.parent}/ledger.db'}}
{body.replace("URL", f"'http://127.0.0.1:{port}/v1'")}
"""
    )


V1 = """
providers:
  a: {kind: openai-compatible, base_url: URL}
  b: {kind: openai-compatible, base_url: URL}
routes:
  live: {pool: [a/echo]}
"""
V2 = """
providers:
  b: {kind: openai-compatible, base_url: URL}
  c: {kind: openai-compatible, base_url: URL, timeout: 30}
routes:
  live: {pool: [{target: b/echo, weight: 3}, c/echo], strategy: least_inflight}
"""
BAD = """
providers:
  b: {kind: openai-compatible, base_url: URL}
routes:
  live: {pool: [b/echo], strategy: fastest}
"""


@dataclass
class Stream:
    reloads_before: int
    provider: str = ""
    finished: bool = False
    error: str = ""


async def _until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll `predicate` (state of the server under test, which offers no event to wait on)."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting: {what}")


@pytest.fixture
async def emulator_port():  # type: ignore[no-untyped-def]
    runner, port = await start(EmulatorSettings(port=0, default_latency=Latency(itl_ms=10)))
    yield port
    await runner.cleanup()


async def test_reload_during_a_streaming_load_drops_no_stream(
    tmp_path: Path, emulator_port: int
) -> None:
    path = tmp_path / "llmesh.yaml"
    _write(path, emulator_port, V1)
    server: OrchestratorServer = await serve(
        load_config(path, env={}), address="127.0.0.1:0", env={}
    )
    reloader = server.reloader
    assert reloader is not None
    b_before = server.engine.providers["b"]
    streams: list[Stream] = []
    stop = asyncio.Event()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)

            async def load() -> None:
                while not stop.is_set():
                    stream = Stream(reloads_before=reloader.reloads)
                    streams.append(stream)
                    request = orchestrator_pb2.StreamChatRequest(
                        input=chat_pb2.ChatInput(
                            model="live",
                            messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=TEXT)],
                        )
                    )
                    try:
                        async for event in stub.StreamChat(request, timeout=20):
                            kind = event.WhichOneof("event")
                            if kind == "start":
                                stream.provider = event.start.provider
                            elif kind == "finish":
                                stream.finished = True
                            elif kind == "error":
                                stream.error = str(event.error)
                    except grpc.aio.AioRpcError as exc:
                        stream.error = f"{exc.code()}: {exc.details()}"

            def done() -> int:
                return sum(s.finished or bool(s.error) for s in streams)

            workers = [asyncio.ensure_future(load()) for _ in range(STREAMS)]
            await _until(lambda: done() >= 16, "streams run on the first config")
            _write(path, emulator_port, V2)  # change 1: valid
            await _until(lambda: reloader.reloads == 1, "the new file was applied")
            mark = done()
            await _until(lambda: done() >= mark + 16, "streams run on the new config")
            _write(path, emulator_port, BAD)  # change 2: invalid
            await _until(lambda: reloader.rejected == 1, "the bad file was refused")
            mark = done()
            await _until(lambda: done() >= mark + 16, "streams run on after the refusal")
            stop.set()
            await asyncio.gather(*workers)
    finally:
        await server.stop(0.5)
    failed = [s for s in streams if not s.finished]
    assert failed == [], f"{len(failed)} of {len(streams)} streams failed: {failed[:3]}"
    before = {s.provider for s in streams if s.reloads_before == 0}
    after = {s.provider for s in streams if s.reloads_before == 1}
    assert "a" in before
    assert after <= {"b", "c"} and "b" in after, after  # every call sent after the swap
    assert reloader.config.routes["live"].pool is not None
    assert [d.target for d in reloader.config.routes["live"].pool.deployments] == [
        "b/echo",
        "c/echo",
    ]  # the refused file changed nothing
    assert server.engine.providers["b"] is b_before, "an unchanged provider keeps its client"
    assert "a" not in server.engine.providers
    assert reloader.counts() == [
        (1.0, {"llmesh.outcome": "applied"}),
        (1.0, {"llmesh.outcome": "rejected"}),
    ]
    print(f"\nreload under load: {len(streams)} streams at c={STREAMS}, 0 failed")


async def test_sighup_reloads_and_a_restart_only_change_is_named(
    tmp_path: Path, emulator_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "llmesh.yaml"
    _write(path, emulator_port, V1, interval=0)
    server = await serve(load_config(path, env={}), address="127.0.0.1:0", env={})
    reloader = server.reloader
    assert reloader is not None
    try:
        _write(path, emulator_port, V2 + "gateway: {port: 8181}\n", interval=0)
        os.kill(os.getpid(), signal.SIGHUP)
        await _until(lambda: reloader.reloads == 1, "SIGHUP reloaded the file")
        router = server.assembly.path.router
        assert [t.name for t in router.plan("live")[0]] in (
            ["b/echo", "c/echo"],
            ["c/echo", "b/echo"],
        )
    finally:
        await server.stop(0.5)
    assert "need a restart to apply: gateway_port" in caplog.text


async def test_a_call_routed_before_a_swap_keeps_its_providers_for_failover() -> None:
    a = Scripted("a", [0.05, LlmeshError(Reason.OVERLOADED, "down")])
    b = Scripted("b", [TextDelta("ok"), Finish(FinishReason.STOP, "stop", Usage(1, 1))])
    eng = scripted_engine(a, b, retry=RetrySettings(max_attempts=1))
    call = ChatCall("a/m", ChatRequest((Message(Role.USER, "hi"),)), ("b/m",))
    events = eng.stream(call)
    waiting = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.01)  # a's attempt is in flight
    retired = eng.engine.swap_providers({"a": a})  # a reload removed provider b
    assert retired == [b]
    started = await waiting
    assert isinstance(started, Started) and started.provider == "b"
    assert [e async for e in events][-1].reason is FinishReason.STOP
    assert "b" not in eng.engine.providers  # the next call no longer finds it
