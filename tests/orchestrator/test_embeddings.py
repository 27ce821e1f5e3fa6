"""Embeddings calls: the handler's fallback and attempt trail, and the Embed RPC end to end."""

from __future__ import annotations

import time
from array import array
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.policy_settings import Limit, PolicyConfig
from llmesh.services.common.resilience_settings import BreakerSettings
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core.call import Call, RoutedCall
from llmesh.services.core.caller import Caller
from llmesh.services.core.embeddings import EmbeddingRequest, Embeddings, pack_floats
from llmesh.services.core.events import CallEvent, Completed, Started
from llmesh.services.core.policy import Policy
from llmesh.services.core.target import Target
from llmesh.services.core.trail import Outcome, Trail
from llmesh.services.core.usage import Usage
from llmesh.services.emulator.embedding_vectors import embed_text
from llmesh.services.ledger import PriceTable
from llmesh.services.orchestrator.accounting import Accounting
from llmesh.services.orchestrator.admission import RateLimiter
from llmesh.services.orchestrator.admission.spend import input_bound, output_bound, worst_case
from llmesh.services.orchestrator.embeddings import EmbeddingsHandler
from llmesh.services.orchestrator.estimate import estimate_usage
from llmesh.services.orchestrator.layers import Cached, RateLimited
from llmesh.services.orchestrator.providers.embeddings import EmbeddingResult, NoEmbeddings
from llmesh.services.orchestrator.resilience import Breakers
from llmesh.services.orchestrator.response_cache import ResponseCache
from llmesh.services.orchestrator.server import serve
from llmesh.v1 import embeddings_pb2, orchestrator_pb2_grpc
from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh


class FakeClient:
    """Answers from a script: an `LlmeshError` to raise, or vectors to return."""

    def __init__(self, name: str, *answers: LlmeshError | EmbeddingResult) -> None:
        self.name = name
        self.answers = list(answers)
        self.calls: list[str] = []

    async def embed(
        self, model: str, request: EmbeddingRequest, *, timeout: float | None
    ) -> EmbeddingResult:
        self.calls.append(model)
        answer = self.answers.pop(0)
        if isinstance(answer, LlmeshError):
            raise answer
        return answer

    async def aclose(self) -> None:
        pass


def _routed(*targets: str, request: EmbeddingRequest | None = None) -> RoutedCall[Any]:
    req = request or EmbeddingRequest(("a", "b"))
    call = Call(targets[0], req)
    parsed = tuple(Target(*t.split("/", 1)) for t in targets)
    return RoutedCall(call, parsed, Policy(), "req-1", Trail(started=time.monotonic()))


async def _events(handler: EmbeddingsHandler, call: RoutedCall[Any]) -> list[CallEvent]:
    return [e async for e in handler.stream(call)]


VECTORS = EmbeddingResult((pack_floats((1.0, 0.0)), pack_floats((0.0, 1.0))), Usage(input_tokens=7))


async def test_falls_back_to_the_next_target_and_records_each_attempt() -> None:
    down = FakeClient("p1", LlmeshError(Reason.UPSTREAM_UNAVAILABLE, "500"))
    up = FakeClient("p2", VECTORS)
    handler = EmbeddingsHandler({"p1": down, "p2": up}, Breakers(BreakerSettings()))
    call = _routed("p1/m1", "p2/m2")
    events = await _events(handler, call)
    assert [type(e) for e in events] == [Started, Embeddings, Completed]
    start, vectors, done = events
    assert isinstance(start, Started) and (start.provider, start.model) == ("p2", "m2")
    assert isinstance(vectors, Embeddings) and vectors.vectors == VECTORS.vectors
    assert isinstance(done, Completed) and done.usage.input_tokens == 7
    first, second = call.trail.attempts
    assert (first.outcome, first.reason) == (Outcome.FAILED, Reason.UPSTREAM_UNAVAILABLE)
    assert second.outcome is Outcome.SUCCEEDED and second.usage == Usage(input_tokens=7)
    assert done.attempts == (first, second)


async def test_a_bad_request_is_not_sent_elsewhere() -> None:
    bad = FakeClient("p1", LlmeshError(Reason.INVALID_REQUEST, "no"))
    other = FakeClient("p2", VECTORS)
    handler = EmbeddingsHandler({"p1": bad, "p2": other}, Breakers(BreakerSettings()))
    with pytest.raises(LlmeshError) as info:
        await _events(handler, _routed("p1/m", "p2/m"))
    assert info.value.reason is Reason.INVALID_REQUEST
    assert other.calls == []


async def test_an_open_breaker_skips_its_target() -> None:
    breakers = Breakers(BreakerSettings(fail_max=1))
    await breakers.record_failure("p1/m", Reason.UPSTREAM_UNAVAILABLE, "down")
    skipped = FakeClient("p1", VECTORS)
    up = FakeClient("p2", VECTORS)
    call = _routed("p1/m", "p2/m")
    await _events(EmbeddingsHandler({"p1": skipped, "p2": up}, breakers), call)
    assert skipped.calls == []
    assert [a.outcome for a in call.trail.attempts] == [Outcome.SKIPPED, Outcome.SUCCEEDED]


async def test_unreported_usage_is_estimated_from_the_texts() -> None:
    quiet = FakeClient("p", EmbeddingResult((pack_floats((1.0,)),), None))
    call = _routed("p/m", request=EmbeddingRequest(("x" * 40,)))
    events = await _events(EmbeddingsHandler({"p": quiet}, Breakers(BreakerSettings())), call)
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.usage == Usage(input_tokens=10, estimated=True)


async def test_a_provider_without_embeddings_is_named_and_skipped_for_the_next() -> None:
    handler = EmbeddingsHandler(
        {"anthropic": NoEmbeddings("anthropic", "anthropic"), "p": FakeClient("p", VECTORS)},
        Breakers(BreakerSettings()),
    )
    with pytest.raises(LlmeshError) as info:
        await _events(handler, _routed("anthropic/claude-haiku-4-5"))
    assert info.value.reason is Reason.PROVIDER_NOT_CONFIGURED
    assert "'anthropic'" in info.value.message and "embeddings" in info.value.message
    events = await _events(handler, _routed("anthropic/claude-haiku-4-5", "p/m"))
    assert isinstance(events[0], Started) and events[0].provider == "p"


async def test_a_token_rate_limit_takes_the_texts_alone() -> None:
    """An embedding produces no output: admission takes its input tokens, not a reply's."""
    handler = EmbeddingsHandler({"p": FakeClient("p", VECTORS)}, Breakers(BreakerSettings()))
    limited = RateLimited(
        handler,
        RateLimiter(),
        tenants={"*": Limit(tokens_per_minute=50)},
        keys={},
        targets={},
    )
    routed = _routed("p/m", request=EmbeddingRequest(("x" * 80,)))  # about 20 tokens
    call = RoutedCall(
        replace(routed.call, caller=Caller(tenant="t")),
        routed.targets,
        routed.policy,
        routed.request_id,
        routed.trail,
    )
    events = [e async for e in limited.stream(call)]
    assert isinstance(events[-1], Completed)


# -- the Embed RPC through the whole mesh -----------------------------------------------


async def _embed(mesh: Mesh, **fields: Any) -> embeddings_pb2.EmbedResponse:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        reply: embeddings_pb2.EmbedResponse = await stub.Embed(
            embeddings_pb2.EmbedRequest(**fields), timeout=10
        )
        return reply


def _floats(data: bytes) -> list[float]:
    values = array("f")
    values.frombytes(data)
    return list(values)


async def test_embed_rpc_records_one_ledger_row_with_usage_and_cost(mesh: Mesh) -> None:
    texts: Sequence[str] = ["the first text", "and a second one"]
    reply = await _embed(
        mesh,
        model="openai/text-embedding-3-small",
        inputs=texts,
        metadata={"user": "u-1"},
    )
    assert (reply.provider, reply.model) == ("openai", "text-embedding-3-small")
    assert [e.index for e in reply.embeddings] == [0, 1]
    assert list(reply.embeddings[0].values) == list(embed_text("text-embedding-3-small", texts[0]))
    assert reply.usage.input_tokens > 0 and not reply.usage.estimated
    assert reply.cost_usd == pytest.approx(reply.usage.input_tokens * 0.02 / 1e6)
    row = await ledger_record(mesh.config.database_url, reply.request_id)
    assert (row.provider, row.model, row.user) == ("openai", "text-embedding-3-small", "u-1")
    assert row.input_tokens == reply.usage.input_tokens and row.output_tokens == 0
    assert row.cost_usd == pytest.approx(reply.cost_usd) and row.cost_usd > 0
    assert [a["outcome"] for a in row.attempts] == ["succeeded"]
    assert row.attempts[0]["usage"]["input_tokens"] == reply.usage.input_tokens


async def test_embed_rpc_base64_and_dimensions(mesh: Mesh) -> None:
    reply = await _embed(
        mesh,
        model="emulator/text-embedding-3-large",
        inputs=["x"],
        dimensions=256,
        encoding=embeddings_pb2.EMBEDDING_ENCODING_BASE64,
    )
    (only,) = reply.embeddings
    assert not only.values
    assert _floats(only.data) == list(embed_text("text-embedding-3-large", "x", 256))


async def test_embed_rpc_falls_back_from_a_failing_target(mesh: Mesh) -> None:
    mesh.set_fault("emb-flaky", "server_error", times=1)
    reply = await _embed(
        mesh,
        model="emulator/emb-flaky",
        inputs=["fall back"],
        fallbacks=["openai/text-embedding-3-small"],
    )
    assert (reply.provider, reply.model) == ("openai", "text-embedding-3-small")
    row = await ledger_record(mesh.config.database_url, reply.request_id)
    assert [(a["target"], a["outcome"]) for a in row.attempts] == [
        ("emulator/emb-flaky", "failed"),
        ("openai/text-embedding-3-small", "succeeded"),
    ]
    assert row.attempts[0]["reason"] == "UPSTREAM_UNAVAILABLE"
    assert row.input_tokens == reply.usage.input_tokens > 0


async def test_a_budget_holds_and_commits_an_embeddings_call(mesh: Mesh, tmp_path: Path) -> None:
    assert mesh.config is not None
    config = replace(
        mesh.config,
        database_url=f"sqlite:///{tmp_path}/own.db",
        policy=PolicyConfig.from_mapping({"budgets": {"tenants": {"*": {"daily_usd": 1e-7}}}}),
    )
    server = await serve(config, address="127.0.0.1:0", env=mesh.env())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
            model = "openai/text-embedding-3-small"
            ok = await stub.Embed(embeddings_pb2.EmbedRequest(model=model, inputs=["hi"]))
            assert ok.cost_usd > 0
            budgets = server.assembly.budgets
            assert budgets is not None
            spent, _ = await budgets.spent("tenant:default")
            assert spent == pytest.approx(ok.cost_usd)
            with pytest.raises(grpc.aio.AioRpcError) as info:  # 100 bytes may cost 2e-6
                await stub.Embed(embeddings_pb2.EmbedRequest(model=model, inputs=["x" * 100]))
            assert from_rpc_error(info.value).reason is Reason.BUDGET_EXCEEDED
    finally:
        await server.stop(0.5)


async def test_embed_rpc_refuses_a_bad_request(mesh: Mesh) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _embed(mesh, model="openai/text-embedding-3-small", inputs=["ok", ""])
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    err = from_rpc_error(info.value)
    assert err.reason is Reason.INVALID_REQUEST
    assert [v.field for v in err.violations] == ["inputs[1]"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _embed(mesh, model="anthropic/claude-haiku-4-5", inputs=["x"])
    assert from_rpc_error(info.value).reason is Reason.PROVIDER_NOT_CONFIGURED


def test_a_budget_bounds_an_embeddings_call_by_its_input() -> None:
    prices = PriceTable.defaults()
    target = Target("openai", "text-embedding-3-small")
    request = EmbeddingRequest(("abc", "dé"))
    assert input_bound(request) == 3 + 3  # UTF-8 bytes: at least the tokens of any tokenizer
    assert output_bound(prices, target, request) == (0, True)
    assert worst_case(prices, target, request) == pytest.approx(6 * 0.02 / 1e6)


def _upstream_requests(mesh: Mesh, model: str) -> int:
    counts = mesh.stats()["by_model"].get(model, {})
    return int(counts.get("requests", 0))


async def test_a_second_identical_embed_call_is_a_cache_hit(mesh: Mesh) -> None:
    assert mesh.config is not None
    model = "text-embedding-3-small"
    fields: dict[str, Any] = {"model": f"openai/{model}", "inputs": ["cache these", "two texts"]}
    before = _upstream_requests(mesh, model)
    first = await _embed(mesh, **fields)
    second = await _embed(mesh, **fields)
    assert _upstream_requests(mesh, model) == before + 1, "the hit went upstream"
    assert not first.cache_hit and second.cache_hit
    assert [list(e.values) for e in second.embeddings] == [list(e.values) for e in first.embeddings]
    assert (second.provider, second.model) == (first.provider, first.model)
    assert second.usage.input_tokens == first.usage.input_tokens > 0
    assert first.cost_usd > 0 and second.cost_usd == 0
    row = await ledger_record(mesh.config.database_url, second.request_id)
    assert row.cache_hit and row.cost_usd == 0
    assert row.input_tokens == first.usage.input_tokens
    assert row.cache_savings_usd == pytest.approx(first.cost_usd)


async def test_other_dimensions_or_another_tenant_miss_the_embeddings_cache(mesh: Mesh) -> None:
    fields: dict[str, Any] = {"model": "emulator/text-embedding-3-large", "inputs": ["a secret"]}
    first = await _embed(mesh, **fields, metadata={"tenant": "tenant-a"})
    shorter = await _embed(mesh, **fields, dimensions=256, metadata={"tenant": "tenant-a"})
    other = await _embed(mesh, **fields, metadata={"tenant": "tenant-b"})
    again = await _embed(mesh, **fields, metadata={"tenant": "tenant-a"})
    assert not first.cache_hit and not shorter.cache_hit
    assert not other.cache_hit, "tenant-b was served tenant-a's cached vectors"
    assert again.cache_hit
    assert len(shorter.embeddings[0].values) == 256


async def test_the_redis_cache_serves_embeddings(
    mesh: Mesh, tmp_path: Path, redis_server: str
) -> None:
    assert mesh.config is not None
    namespace = f"llmesh-test-emb:{time.time_ns()}"
    policy = PolicyConfig.from_mapping({"cache": {"response": {"redis_url": redis_server}}})
    config = replace(mesh.config, database_url=f"sqlite:///{tmp_path}/own.db", policy=policy)
    request = embeddings_pb2.EmbedRequest(
        model="openai/text-embedding-3-small", inputs=[f"shared across replicas {namespace}"]
    )
    replies = []
    for _ in range(2):  # two servers, one Redis: the second is served what the first stored
        server = await serve(config, address="127.0.0.1:0", env=mesh.env())
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
                stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
                replies.append(await stub.Embed(request, timeout=10))
        finally:
            await server.stop(0.5)
    first, second = replies
    assert not first.cache_hit and second.cache_hit
    assert list(second.embeddings[0].values) == list(first.embeddings[0].values)
    assert second.cost_usd == 0


async def test_replies_over_the_float_cap_are_served_but_not_stored() -> None:
    cache = ResponseCache()
    accounting = Accounting(PriceTable.defaults(), None, estimate_usage)
    for cap, stored in ((4, True), (3, False)):
        client = FakeClient("openai", VECTORS, VECTORS)
        handler = EmbeddingsHandler({"openai": client}, Breakers(BreakerSettings()))
        layer = Cached(handler, cache, accounting, default_ttl=60, max_embedding_floats=cap)
        request = EmbeddingRequest((f"cap {cap}", "b"))
        for _ in range(2):
            events = [e async for e in layer.stream(_routed("openai/e", request=request))]
            assert [e for e in events if isinstance(e, Embeddings)] == [Embeddings(VECTORS.vectors)]
        assert len(client.calls) == (1 if stored else 2)
