"""One model behind three emulator deployments (healthy, slow, failing), balanced by latency.

Must show: most calls go to the healthy deployment, the failing one is removed by its
breaker, and no call fails. The failing deployment starts as fast as the healthy one and
goes down after a fifth of the calls (an outage, injected in its emulator at run time), so
it is the one balancing would prefer when it fails. The split is printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import grpc
import httpx

from llmesh.services.common.config import load_config
from llmesh.services.emulator import EmulatorSettings, start
from llmesh.services.emulator.settings import Latency
from llmesh.services.orchestrator.server import serve
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc

CALLS = 100
CONCURRENCY = 4
FAIL_MAX = 3
OUTAGE_AT = 20


def _config(tmp_path: Path, ports: dict[str, int]) -> Path:
    providers = "\n".join(
        f"  {name}: {{kind: openai-compatible, base_url: 'http://127.0.0.1:{port}/v1'}}"
        for name, port in ports.items()
    )
    path = tmp_path / "llmesh.yaml"
    path.write_text(
        f"""
orchestrator: {{reload_interval: 0}}
ledger: {{url: 'sqlite:///{tmp_path}/ledger.db'}}
providers:
{providers}
routes:
  gpt:
    pool: [failing/gpt-4o, slow/gpt-4o, healthy/gpt-4o]
    strategy: latency
    latency_decay: 0.5
resilience:
  breaker: {{fail_max: {FAIL_MAX}, reset_timeout: 600}}
  retry: {{initial_backoff: 0.01, max_backoff: 0.05, jitter: 0}}
"""
    )
    return path


async def test_latency_balancing_avoids_the_slow_deployment_and_the_breaker_the_failing_one(
    tmp_path: Path,
) -> None:
    emulators = {
        "healthy": EmulatorSettings(port=0),
        "slow": EmulatorSettings(port=0, default_latency=Latency(ttft_ms=150)),
        "failing": EmulatorSettings(port=0),
    }
    runners, ports = [], {}
    for name, settings in emulators.items():
        runner, ports[name] = await start(settings)
        runners.append(runner)
    config = load_config(_config(tmp_path, ports), env={})
    server = await serve(config, address="127.0.0.1:0", env={})
    served: Counter[str] = Counter()
    before_outage: Counter[str] = Counter()
    failed_attempts: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)

            async def one(i: int) -> None:
                request = orchestrator_pb2.StreamChatRequest(
                    input=chat_pb2.ChatInput(
                        model="gpt",
                        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=f"call {i}")],
                    )
                )
                call = stub.StreamChat(request, timeout=20)
                events = [e async for e in call]
                assert events[-1].WhichOneof("event") == "finish", f"call {i} failed"
                assert events[-1].finish.attempts[-1].pick.startswith("latency ")
                trail = json.loads(dict(await call.trailing_metadata())["llmesh-attempts"])
                for attempt in trail:
                    provider = attempt["target"].split("/")[0]
                    if attempt["outcome"] == "succeeded":
                        served[provider] += 1
                    elif attempt["outcome"] == "failed":
                        failed_attempts[provider] += 1
                    elif attempt.get("reason") == "CIRCUIT_OPEN":
                        skipped[provider] += 1

            for batch in range(0, CALLS, CONCURRENCY):
                if batch == OUTAGE_AT:
                    async with httpx.AsyncClient() as http:
                        outage = {"model": "gpt-4o", "fault": "unavailable"}
                        url = f"http://127.0.0.1:{ports['failing']}/emulator/faults"
                        (await http.post(url, json=outage)).raise_for_status()
                    before_outage = served.copy()
                await asyncio.gather(*(one(i) for i in range(batch, batch + CONCURRENCY)))
        views = {v.name: v for v in await server.engine.breakers.views()}
    finally:
        await server.stop(0.5)
        for runner in runners:
            await runner.cleanup()
    after = served - before_outage
    print(
        f"\nthree deployments, {CALLS} calls at c={CONCURRENCY}: served {dict(served)} "
        f"({dict(before_outage)} before the outage, {dict(after)} after), failed attempts "
        f"{dict(failed_attempts)}, skipped with the breaker open {dict(skipped)}"
    )
    assert sum(served.values()) == CALLS, "every call succeeded"
    assert served["slow"] <= CALLS * 0.15
    assert served["healthy"] > CALLS / 2
    assert after["failing"] == 0 and after["healthy"] >= (CALLS - OUTAGE_AT) * 0.8
    assert views["failing/gpt-4o"].state == "open"
    # it failed until its breaker opened (plus calls already routed to it), then was skipped
    assert FAIL_MAX <= failed_attempts["failing"] <= FAIL_MAX + CONCURRENCY
    assert skipped["failing"] >= 1
