"""The observing layer: every call's metrics from one place, read with an in-memory reader."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from llmesh.services.common.config import Config, ProviderConfig, RouteConfig
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.policy_settings import PolicyConfig
from llmesh.services.common.resilience_settings import (
    BreakerSettings,
    QueueSettings,
    RetrySettings,
)
from llmesh.services.core.call import ChatCall
from llmesh.services.core.caller import Caller
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import Finish, TextDelta
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.assembly import Assembly, assemble
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.layers.observed import Observed
from llmesh.services.orchestrator.resilience import Breakers, TargetLimiter
from llmesh.services.telemetry import Metrics, MetricsSettings
from llmesh.services.telemetry.settings import LogSettings, TelemetrySettings
from tests.orchestrator.scripted import Scripted

OK = [TextDelta("hello"), TextDelta(" there"), Finish(FinishReason.STOP, "stop", Usage(10, 5))]
DOWN = LlmeshError(Reason.UPSTREAM_UNAVAILABLE, "down")


def _hello() -> ChatRequest:
    return ChatRequest(messages=(Message(Role.USER, "hi"),))


def _config(tmp_path: Path, **changes: Any) -> Config:
    providers = {
        name: ProviderConfig(name, "openai-compatible", base_url="http://x", models=("m",))
        for name in ("a", "b")
    }
    return Config(
        providers=providers,
        routes={"pair": RouteConfig("pair", ("a/m", "b/m"))},
        database_url=f"sqlite:///{tmp_path}/ledger.db",
        policy=PolicyConfig.from_mapping({"prices": {"a/m": {"input": 1.0, "output": 2.0}}}),
        **changes,
    )


def _engine(a: Scripted, b: Scripted | None = None) -> Orchestrator:
    return Orchestrator(
        {"a": a, "b": b or Scripted("b", OK)},
        breakers=Breakers(BreakerSettings(fail_max=2)),
        retry=RetrySettings(max_attempts=2, initial_backoff=0.0, jitter=0.0),
    )


def _metrics(reader: InMemoryMetricReader, **settings: Any) -> Metrics:
    return Metrics(
        MetricsSettings(enabled=True, prometheus=False, **settings),
        "orchestrator",
        readers=[reader],
    )


def points(reader: InMemoryMetricReader, name: str) -> list[tuple[dict[str, Any], Any]]:
    """(attributes, value) of every point of metric `name`: a sum's value, a histogram's
    count, a gauge's value."""
    data = reader.get_metrics_data()
    out = []
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name != name:
                    continue
                for p in metric.data.data_points:
                    value = p.count if hasattr(p, "bucket_counts") else p.value
                    out.append((dict(p.attributes), value))
    return out


def total(reader: InMemoryMetricReader, name: str, **match: str) -> float:
    """The sum of `name`'s points whose attributes include `match` (dots as underscores)."""
    want = {k.replace("_", "."): v for k, v in match.items()}
    return sum(v for attrs, v in points(reader, name) if want.items() <= attrs.items())


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    r = InMemoryMetricReader()
    yield r


async def _calls(assembly: Assembly, model: str, n: int = 1) -> list[Any]:
    events = []
    for _ in range(n):
        events.append([e async for e in assembly.path.stream(ChatCall(model, _hello()))])
    return events


async def test_a_successful_call_counts_its_outcome_tokens_cost_and_timings(
    tmp_path: Path, reader: InMemoryMetricReader
) -> None:
    assembly = await assemble(
        _config(tmp_path),
        _engine(Scripted("a", OK)),
        bind_host="127.0.0.1",
        metrics=_metrics(reader),
    )
    try:
        await _calls(assembly, "a/m")
    finally:
        await assembly.aclose()
    assert total(reader, "llmesh.calls", llmesh_outcome="ok", llmesh_target="a/m") == 1
    assert total(reader, "llmesh.attempts", llmesh_attempt_outcome="succeeded") == 1
    usage = {a["gen_ai.token.type"]: a for a, _ in points(reader, "gen_ai.client.token.usage")}
    assert set(usage) == {"input", "output"}
    assert usage["input"]["gen_ai.provider.name"] == "a"
    assert usage["input"]["gen_ai.request.model"] == "m"
    assert total(reader, "gen_ai.client.operation.duration") == 1
    assert total(reader, "gen_ai.server.request.duration") == 1
    assert total(reader, "gen_ai.server.time_to_first_token") == 1
    assert total(reader, "gen_ai.server.time_per_output_token") == 1  # 5 output tokens
    (cost,) = points(reader, "llmesh.cost.usd")
    assert cost[1] == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)
    assert total(reader, "llmesh.calls.in_flight") == 0  # up on start, down at the end


async def test_a_failure_counts_its_reason_and_retries(
    tmp_path: Path, reader: InMemoryMetricReader
) -> None:
    assembly = await assemble(
        _config(tmp_path),
        _engine(Scripted("a", [DOWN])),
        bind_host="127.0.0.1",
        metrics=_metrics(reader),
    )
    try:
        with pytest.raises(LlmeshError):
            await _calls(assembly, "a/m")
    finally:
        await assembly.aclose()
    assert (
        total(reader, "llmesh.calls", llmesh_outcome="error", llmesh_reason="UPSTREAM_UNAVAILABLE")
        == 1
    )
    assert total(reader, "llmesh.attempts", llmesh_reason="UPSTREAM_UNAVAILABLE") == 2
    assert total(reader, "llmesh.retries", llmesh_target="a/m") == 1
    (duration,) = points(reader, "gen_ai.server.request.duration")
    assert duration[0]["error.type"] == "UPSTREAM_UNAVAILABLE"


async def test_a_fallback_is_counted_with_the_reason_it_left(
    tmp_path: Path, reader: InMemoryMetricReader
) -> None:
    assembly = await assemble(
        _config(tmp_path),
        _engine(Scripted("a", [DOWN])),
        bind_host="127.0.0.1",
        metrics=_metrics(reader),
    )
    try:
        await _calls(assembly, "pair")
    finally:
        await assembly.aclose()
    assert (
        total(reader, "llmesh.fallbacks", llmesh_target="b/m", llmesh_reason="UPSTREAM_UNAVAILABLE")
        == 1
    )
    assert total(reader, "llmesh.calls", llmesh_outcome="ok", llmesh_target="b/m") == 1


async def test_an_open_breaker_shows_in_its_gauge(
    tmp_path: Path, reader: InMemoryMetricReader
) -> None:
    assembly = await assemble(
        _config(tmp_path),
        _engine(Scripted("a", [DOWN])),
        bind_host="127.0.0.1",
        metrics=_metrics(reader),
    )
    try:
        for _ in range(2):  # two calls of two attempts: fail_max 2 opens it
            with pytest.raises(LlmeshError):
                await _calls(assembly, "a/m")
    finally:
        await assembly.aclose()
    states = {
        a["llmesh.breaker.state"]: v
        for a, v in points(reader, "llmesh.breaker.state")
        if a["llmesh.target"] == "a/m"
    }
    assert states == {"open": 1, "closed": 0, "half-open": 0}
    assert total(reader, "llmesh.ledger.backlog") == 0  # flushed at close


async def test_a_rate_limit_refusal_is_a_rejection_of_its_tenant(
    tmp_path: Path, reader: InMemoryMetricReader
) -> None:
    limits = {"rate_limits": {"tenants": {"default": {"requests_per_minute": 1}}}}
    config = replace(_config(tmp_path), policy=PolicyConfig.from_mapping(limits))
    assembly = await assemble(
        config, _engine(Scripted("a", OK)), bind_host="127.0.0.1", metrics=_metrics(reader)
    )
    try:
        await _calls(assembly, "a/m")
        with pytest.raises(LlmeshError):
            await _calls(assembly, "a/m")
    finally:
        await assembly.aclose()
    assert (
        total(
            reader,
            "llmesh.rejections",
            llmesh_reason="RATE_LIMIT_EXCEEDED",
            llmesh_tenant="default",
        )
        == 1
    )


async def test_labels_never_carry_a_model_string_from_the_caller(
    tmp_path: Path, reader: InMemoryMetricReader
) -> None:
    assembly = await assemble(
        _config(tmp_path),
        _engine(Scripted("a", OK)),
        bind_host="127.0.0.1",
        metrics=_metrics(reader),
    )
    try:
        await _calls(assembly, "a/made-up-model-123")
    finally:
        await assembly.aclose()
    data = reader.get_metrics_data()
    assert data is not None
    assert "made-up-model-123" not in data.to_json()
    assert total(reader, "llmesh.calls", llmesh_target="a/other") == 1


async def test_a_tenant_outside_the_configured_set_is_other(
    tmp_path: Path, reader: InMemoryMetricReader
) -> None:
    assembly = await assemble(
        _config(tmp_path),
        _engine(Scripted("a", OK)),
        bind_host="127.0.0.1",
        metrics=_metrics(reader, tenants=frozenset({"acme"})),
    )
    try:
        for tenant in ("acme", "someone-else"):
            call = replace(ChatCall("a/m", _hello()), caller=Caller(tenant, "k"))
            _ = [e async for e in assembly.path.stream(call)]
    finally:
        await assembly.aclose()
    assert total(reader, "llmesh.calls", llmesh_tenant="acme") == 1
    assert total(reader, "llmesh.calls", llmesh_tenant="other") == 1


async def test_with_metrics_and_the_call_log_off_the_layer_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # by default both are off: the layer is not on the path at all
    assembly = await assemble(_config(tmp_path), _engine(Scripted("a", OK)), bind_host="127.0.0.1")
    try:
        assert not isinstance(assembly.path.handler, Observed)
    finally:
        await assembly.aclose()
    on = TelemetrySettings(logs=LogSettings(calls=True))
    assembly = await assemble(
        _config(tmp_path, telemetry=on), _engine(Scripted("a", OK)), bind_host="127.0.0.1"
    )
    try:
        assert isinstance(assembly.path.handler, Observed)
    finally:
        await assembly.aclose()


async def test_waiting_for_a_target_slot_is_recorded_per_target(
    tmp_path: Path, reader: InMemoryMetricReader
) -> None:
    slow = Scripted("a", [0.05, *OK])
    engine = Orchestrator(
        {"a": slow, "b": Scripted("b", OK)},
        limiter=TargetLimiter(QueueSettings(max_concurrency=1)),
    )
    assembly = await assemble(
        _config(tmp_path), engine, bind_host="127.0.0.1", metrics=_metrics(reader)
    )
    try:
        await asyncio.gather(_calls(assembly, "a/m"), _calls(assembly, "a/m"))
    finally:
        await assembly.aclose()
    assert total(reader, "llmesh.queue.wait", llmesh_target="a/m") == 2
    assert total(reader, "llmesh.queue.wait", llmesh_priority="normal") == 2  # the call's tier
    assert total(reader, "llmesh.call.wait") == 2


async def test_without_target_queues_a_call_records_no_wait(
    tmp_path: Path, reader: InMemoryMetricReader
) -> None:
    assembly = await assemble(
        _config(tmp_path),
        _engine(Scripted("a", OK)),
        bind_host="127.0.0.1",
        metrics=_metrics(reader),
    )
    try:
        await _calls(assembly, "a/m")
    finally:
        await assembly.aclose()
    assert total(reader, "llmesh.calls") == 1
    assert points(reader, "llmesh.queue.wait") == []  # no slot taken, nothing waited
    assert points(reader, "llmesh.call.wait") == []
