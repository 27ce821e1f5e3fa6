"""The multiplexing engine over real servers: trails, targets, hedging, shutdown, chaos."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import httpx
import pytest
from google.protobuf import duration_pb2

from llmesh.services.common.config import Resilience
from llmesh.services.common.errors import Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.orchestrator.server import OrchestratorServer, build_engine, serve
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.mesh import Mesh, chat_input


def _seconds(s: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(s * 1e9))
    return d


async def _disconnects(mesh: Mesh, model: str) -> int:
    stats = await asyncio.to_thread(mesh.stats)
    return int(stats.get("by_model", {}).get(model, {}).get("disconnects", 0))


async def test_attempt_trail_in_finish_event_and_trailers(mesh: Mesh) -> None:
    await asyncio.to_thread(mesh.set_fault, "trail-down", "quota")
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        call = stub.StreamChat(
            orchestrator_pb2.StreamChatRequest(
                input=chat_input("openai/trail-down", fallbacks=["emulator/echo"])
            ),
            timeout=10,
        )
        events = [e async for e in call]
        trailers = dict(await call.trailing_metadata())
    finish = events[-1].finish
    outcomes = [
        (a.provider, a.model, orchestrator_pb2.AttemptOutcome.Name(a.outcome))
        for a in finish.attempts
    ]
    assert outcomes == [
        ("openai", "trail-down", "ATTEMPT_OUTCOME_FAILED"),
        ("emulator", "echo", "ATTEMPT_OUTCOME_SUCCEEDED"),
    ]
    assert finish.attempts[1].time_to_first_token.ToNanoseconds() > 0
    assert finish.overhead.ToNanoseconds() >= 0
    trail = json.loads(trailers["llmesh-attempts"])
    assert [a["target"] for a in trail] == ["openai/trail-down", "emulator/echo"]
    assert trail[0]["reason"] == "QUOTA_EXHAUSTED"
    assert float(trailers["llmesh-overhead-ms"]) >= 0


async def test_gateway_reports_the_trail_in_headers(mesh: Mesh) -> None:
    body = {
        "input": {"model": "emulator/echo", "messages": [{"role": "ROLE_USER", "content": "hi"}]}
    }
    async with httpx.AsyncClient(base_url=mesh.gateway_url, timeout=10) as http:
        native = await http.post("/api/v1/chat", json=body)
        compat = await http.post(
            "/v1/chat/completions",
            json={"model": "emulator/echo", "messages": [{"role": "user", "content": "hi"}]},
        )
        targets = await http.get("/api/v1/targets")
    for r in (native, compat):
        assert r.status_code == 200
        assert json.loads(r.headers["x-llmesh-attempts"])[0]["outcome"] == "succeeded"
        assert float(r.headers["x-llmesh-overhead-ms"]) >= 0
    names = {t["name"]: t for t in targets.json()["targets"]}
    assert names["emulator/echo"]["breakerState"] == "BREAKER_STATE_CLOSED"


async def test_hedging_cancels_the_losing_upstream(mesh: Mesh) -> None:
    model = "hedge-loser"
    await asyncio.to_thread(mesh.set_fault, model, "stall", after=0)
    before = await _disconnects(mesh, model)
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        inp = chat_input(f"openai/{model}", "won by the hedge", fallbacks=["emulator/echo"])
        inp.hedge.enabled = True
        inp.hedge.delay.CopyFrom(_seconds(0.05))
        reply = await stub.Chat(orchestrator_pb2.ChatRequest(input=inp), timeout=10)
    assert (reply.provider, reply.message.content) == ("emulator", "won by the hedge")
    started = time.monotonic()
    while await _disconnects(mesh, model) == before:
        assert time.monotonic() - started < 2, "the losing attempt's upstream was not cancelled"
        await asyncio.sleep(0.01)


@pytest.fixture
async def own_orchestrator(mesh: Mesh) -> AsyncIterator[OrchestratorServer]:
    """An orchestrator of its own (breakers that trip fast), beside the shared mesh."""
    assert mesh.config is not None
    config = replace(
        mesh.config,
        resilience=Resilience.from_mapping(
            {"breaker": {"fail_max": 2, "reset_timeout": 60}, "retry": {"max_attempts": 1}}
        ),
    )
    server = await serve(config, address="127.0.0.1:0", engine=build_engine(config, env=mesh.env()))
    try:
        yield server
    finally:
        await server.stop(0.5)


async def test_list_targets_shows_an_open_breaker(
    mesh: Mesh, own_orchestrator: OrchestratorServer
) -> None:
    await asyncio.to_thread(mesh.set_fault, "breaks", "server_error")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{own_orchestrator.port}") as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Chat(orchestrator_pb2.ChatRequest(input=chat_input("openai/breaks")))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Chat(orchestrator_pb2.ChatRequest(input=chat_input("openai/breaks")))
        err = from_rpc_error(info.value)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        assert err.reason is Reason.CIRCUIT_OPEN and err.retry_after is not None
        targets = await stub.ListTargets(orchestrator_pb2.ListTargetsRequest(), timeout=5)
    status = {t.name: t for t in targets.targets}["openai/breaks"]
    assert status.breaker_state == orchestrator_pb2.BREAKER_STATE_OPEN
    assert status.failure_count >= 2
    assert 0 < status.time_to_half_open.ToNanoseconds() <= 60e9


async def test_graceful_shutdown_finishes_quick_calls_and_ends_the_rest(mesh: Mesh) -> None:
    assert mesh.config is not None
    server = await serve(
        mesh.config, address="127.0.0.1:0", engine=build_engine(mesh.config, env=mesh.env())
    )
    model = "shutdown-stall"
    await asyncio.to_thread(mesh.set_fault, model, "stall", after=1)
    before = await _disconnects(mesh, model)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        stuck = stub.StreamChat(
            orchestrator_pb2.StreamChatRequest(input=chat_input(f"openai/{model}", "a b c")),
            timeout=30,
        )
        async for ev in stuck:
            if ev.WhichOneof("event") == "text_delta":
                break
        started = time.monotonic()
        await server.stop(grace=0.3)
        assert time.monotonic() - started < 5, "shutdown waited on a stuck call"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stuck:
                pass
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert from_rpc_error(info.value).reason is Reason.SHUTTING_DOWN
    deadline = time.monotonic() + 2
    while await _disconnects(mesh, model) == before:
        assert time.monotonic() < deadline, "the stuck upstream was not closed"
        await asyncio.sleep(0.01)


CHAOS_FAULTS = {
    "chaos-overloaded": ("overloaded", {}),
    "chaos-cut": ("cut", {"after": 2}),
    "chaos-malformed": ("malformed", {"after": 1}),
    "chaos-stream-error": ("stream_error", {"after": 2}),
    "chaos-server-error": ("server_error", {}),
    "chaos-rate-limit": ("rate_limit", {"retry_after": 0.01}),
    "chaos-stall": ("stall", {"after": 1}),
    "chaos-silent": ("timeout", {}),
}
PRECISE = {
    Reason.OVERLOADED,
    Reason.STREAM_INTERRUPTED,
    Reason.MALFORMED_RESPONSE,
    Reason.UPSTREAM_UNAVAILABLE,
    Reason.RATE_LIMITED,
    Reason.UPSTREAM_TIMEOUT,
}


async def test_chaos_every_stream_ends_precisely_and_nothing_leaks(mesh: Mesh) -> None:
    """A few hundred calls, ~30 % of them hitting a random fault: each ends in exactly one
    finish or a precise error, none hangs, and no task is left running afterwards."""
    for model, (fault, params) in CHAOS_FAULTS.items():
        await asyncio.to_thread(mesh.set_fault, model, fault, **params)
    baseline = _call_tasks(await asyncio.to_thread(mesh.task_names))
    rng = random.Random(7)
    policies = [
        chat_pb2.MID_STREAM_POLICY_NEVER,
        chat_pb2.MID_STREAM_POLICY_RESTART,
        chat_pb2.MID_STREAM_POLICY_CONTINUE,
    ]
    outcomes: list[str] = []

    async def one(stub: orchestrator_pb2_grpc.OrchestratorServiceStub, i: int) -> None:
        provider = rng.choice(["openai", "anthropic"])
        faulty = rng.random() < 0.3
        model = rng.choice(list(CHAOS_FAULTS)) if faulty else f"chaos-ok-{i % 5}"
        inp = chat_input(f"{provider}/{model}", "one two three four five six")
        inp.stall_timeout.CopyFrom(_seconds(0.3))
        inp.first_token_timeout.CopyFrom(_seconds(0.5))
        inp.mid_stream_policy = rng.choice(policies)
        if rng.random() < 0.5:
            inp.fallbacks.append("emulator/echo")
        call = stub.StreamChat(orchestrator_pb2.StreamChatRequest(input=inp), timeout=15)
        kinds: list[str] = []
        try:
            async for ev in call:
                kinds.append(ev.WhichOneof("event"))
        except grpc.aio.AioRpcError as exc:
            err = from_rpc_error(exc)
            assert err.reason in PRECISE, f"{model}: {err}"
            assert "finish" not in kinds, "an error after a finish"
            outcomes.append("error")
            return
        assert kinds.count("finish") == 1 and kinds[-1] == "finish", f"{model}: {kinds}"
        outcomes.append("finish")

    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        sem = asyncio.Semaphore(24)

        async def bounded(i: int) -> None:
            async with sem:
                await asyncio.wait_for(one(stub, i), 20)

        await asyncio.gather(*(bounded(i) for i in range(300)))
    assert len(outcomes) == 300
    assert outcomes.count("error") > 10 and outcomes.count("finish") > 200
    deadline = time.monotonic() + 5
    while (left := _call_tasks(await asyncio.to_thread(mesh.task_names))) != baseline:
        if time.monotonic() > deadline:
            pytest.fail(f"tasks left running: {sorted(set(left) - set(baseline))}")
        await asyncio.sleep(0.05)


def _call_tasks(names: list[str]) -> list[str]:
    """Tasks that belong to calls, leaving out idle keep-alive connections of the emulator's
    HTTP server (the providers' pools keep them open on purpose) and grpc's own loop tasks."""
    return [
        n
        for n in names
        if "RequestHandler.start" not in n and "_cython_" not in n and "task_names" not in n
    ]


async def test_a_callers_retry_is_not_retried_again(mesh: Mesh) -> None:
    """``llmesh-retry-count`` > 0: one upstream request, not llmesh's own retries on top."""
    await asyncio.to_thread(mesh.set_fault, "client-retry-down", "unavailable")
    request = orchestrator_pb2.ChatRequest(input=chat_input("openai/client-retry-down"))
    tries = {}
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        for count in ("0", "1"):
            call = stub.Chat(request, timeout=20, metadata=(("llmesh-retry-count", count),))
            with pytest.raises(grpc.aio.AioRpcError):
                await call
            trail = json.loads(dict(await call.trailing_metadata())["llmesh-attempts"])
            tries[count] = len(trail)
        bad = stub.Chat(request, timeout=5, metadata=(("llmesh-retry-count", "soon"),))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await bad
    assert tries["0"] > 1 and tries["1"] == 1
    err = from_rpc_error(info.value)
    assert err.reason is Reason.INVALID_REQUEST
    assert err.violations[0].field == "llmesh-retry-count"
