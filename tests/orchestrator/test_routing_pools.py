"""Pools on the call path: routed once, failed over across deployments, noted in the trail."""

from __future__ import annotations

import json

from llmesh.services.common.config import ProviderConfig, RouteConfig
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.resilience_settings import BreakerSettings
from llmesh.services.common.route_settings import DeploymentConfig, PoolConfig
from llmesh.services.core.call import ChatCall
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import Completed, Finish, TextDelta
from llmesh.services.core.trail import Outcome, attempt_json
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.pools import Balancer, DeploymentStats
from llmesh.services.orchestrator.resilience import Breakers
from llmesh.services.orchestrator.routing import Router
from tests.orchestrator.scripted import Scripted

OK = [TextDelta("hi"), Finish(FinishReason.STOP, "stop", Usage(3, 1))]
DOWN = [LlmeshError(Reason.OVERLOADED, "overloaded")]


def _route(strategy: str, *deployments: DeploymentConfig, fallbacks: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    pool = PoolConfig(deployments, strategy)
    return RouteConfig(
        "pooled", tuple(d.target for d in deployments), pool=pool, fallbacks=fallbacks
    )


def _mesh(route: RouteConfig, *providers: Scripted, **engine: object):  # type: ignore[no-untyped-def]
    stats = DeploymentStats()
    configs = {
        p.name: ProviderConfig(p.name, "openai-compatible", base_url="http://x") for p in providers
    }
    router = Router(configs, {}, {"pooled": route}, Balancer(stats))
    stats.watched = frozenset(router.pooled())
    orchestrator = Orchestrator(
        {p.name: p for p in providers},
        deployments=stats,
        **engine,  # type: ignore[arg-type]
    )
    return router, orchestrator


def _call(model: str = "pooled") -> ChatCall:
    return ChatCall(model, ChatRequest((Message(Role.USER, "hello"),)))


async def _run(router: Router, orchestrator: Orchestrator, call: ChatCall) -> Completed:
    events = [e async for e in orchestrator.stream(router.route(call))]
    done = events[-1]
    assert isinstance(done, Completed)
    return done


async def test_a_retryable_failure_moves_to_the_next_deployment_without_a_retry() -> None:
    a, b = Scripted("a", DOWN), Scripted("b", OK)
    route = _route("round_robin", DeploymentConfig("a/m", weight=10), DeploymentConfig("b/m"))
    router, orchestrator = _mesh(route, a, b)
    done = await _run(router, orchestrator, _call())
    assert [(r.target.name, r.outcome) for r in done.attempts] == [
        ("a/m", Outcome.FAILED),
        ("b/m", Outcome.SUCCEEDED),
    ]
    assert len(a.calls) == 1, "the next deployment is the retry"
    assert done.attempts[0].pick == "round_robin 1/2: weighted round robin"
    assert attempt_json(done.attempts[1], brief=True)["pick"] == (
        "round_robin 2/2: weighted round robin"
    )


async def test_the_pool_is_walked_before_the_route_fallbacks_and_its_last_is_retried() -> None:
    a, b, c = Scripted("a", DOWN), Scripted("b", DOWN, DOWN, OK), Scripted("c", OK)
    route = _route(
        "round_robin",
        DeploymentConfig("a/m", weight=10),
        DeploymentConfig("b/m"),
        fallbacks=("c/m",),
    )

    async def no_wait(_seconds: float) -> None:
        return None

    router, orchestrator = _mesh(route, a, b, c, sleep=no_wait)
    done = await _run(router, orchestrator, _call())
    assert [r.target.name for r in done.attempts] == ["a/m", "b/m", "b/m", "b/m"]
    assert (len(a.calls), len(b.calls), len(c.calls)) == (1, 3, 0)


async def test_an_open_breaker_removes_a_deployment_and_the_trail_says_so() -> None:
    a, b = Scripted("a", DOWN), Scripted("b", OK)
    route = _route("least_inflight", DeploymentConfig("a/m", weight=10), DeploymentConfig("b/m"))
    breakers = Breakers(BreakerSettings(fail_max=1, reset_timeout=60))
    router, orchestrator = _mesh(route, a, b, breakers=breakers)
    await _run(router, orchestrator, _call())
    done = await _run(router, orchestrator, _call())
    assert [(r.target.name, r.outcome, r.reason) for r in done.attempts] == [
        ("a/m", Outcome.SKIPPED, Reason.CIRCUIT_OPEN),
        ("b/m", Outcome.SUCCEEDED, None),
    ]
    assert done.attempts[0].pick == "least_inflight 1/2: 0 in flight"
    assert len(a.calls) == 1


async def test_a_deployment_near_its_limit_is_a_skip_in_the_trail() -> None:
    a, b = Scripted("a", OK), Scripted("b", OK)
    route = _route(
        "round_robin", DeploymentConfig("a/m", weight=100, rpm=2), DeploymentConfig("b/m")
    )
    router, orchestrator = _mesh(route, a, b)
    first = await _run(router, orchestrator, _call())
    assert [r.target.name for r in first.attempts] == ["a/m"]  # 1 of 2: room left
    second = await _run(router, orchestrator, _call())
    assert [(r.target.name, r.outcome, r.reason) for r in second.attempts] == [
        ("a/m", Outcome.SKIPPED, Reason.RATE_LIMIT_EXCEEDED),
        ("b/m", Outcome.SUCCEEDED, None),
    ]
    trail = json.loads(json.dumps([attempt_json(r, brief=True) for r in second.attempts]))
    assert trail[0]["pick"] == "near its rpm limit: 2 of 2 in the last minute"
    assert (len(a.calls), len(b.calls)) == (1, 1)


async def test_attempts_in_flight_spread_a_least_inflight_pool() -> None:
    slow = [0.05, *OK]
    a, b = Scripted("a", slow), Scripted("b", slow)
    route = _route("least_inflight", DeploymentConfig("a/m"), DeploymentConfig("b/m"))
    router, orchestrator = _mesh(route, a, b)
    gen_a = orchestrator.stream(router.route(_call()))
    await anext(gen_a)  # a's attempt opened and is in flight
    gen_b = orchestrator.stream(router.route(_call()))
    await anext(gen_b)
    assert (len(a.calls), len(b.calls)) == (1, 1)
    assert orchestrator.deployments.inflight("a/m") == 1
    for gen in (gen_a, gen_b):
        async for _ in gen:
            pass
    assert orchestrator.deployments.inflight("a/m") == 0


def test_listed_routes_show_a_pool_and_its_fallbacks() -> None:
    route = _route("latency", DeploymentConfig("a/m"), DeploymentConfig("b/m"), fallbacks=("c/m",))
    router, _ = _mesh(route, Scripted("a", OK), Scripted("b", OK), Scripted("c", OK))
    entry = next(e for e in router.entries() if e.name == "pooled")
    assert entry.alias_for == "a/m | b/m > c/m"
