"""The call path's shape: layers composed in assembly, call types by registration, routing once."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llmesh.services.common.config import Config, ProviderConfig, RouteConfig
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.policy_settings import PolicyConfig
from llmesh.services.core.call import Call, ChatCall, RoutedCall
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import CallEvent, Completed, Finish, Started, TextDelta
from llmesh.services.core.handler import Handler
from llmesh.services.core.trail import AttemptRecord, Outcome
from llmesh.services.core.usage import Usage
from llmesh.services.ledger import open_store
from llmesh.services.orchestrator import routing
from llmesh.services.orchestrator.assembly import assemble
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.layers import compose
from tests.orchestrator.scripted import Scripted

# -- a layer and a call type added by assembly alone -----------------------------------


class Recording:
    """A layer that records every call it sees, then passes it on."""

    seen: list[RoutedCall[Any]] = []

    def __init__(self, inner: Handler) -> None:
        self._inner = inner

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        Recording.seen.append(call)
        return self._inner.stream(call)


@dataclass(frozen=True)
class Shout:
    """A call type the orchestrator has never heard of: upper-case the text."""

    text: str


class ShoutHandler:
    """Serves `Shout` calls; each is one attempt at the call's first target."""

    def stream(self, call: RoutedCall[Shout]) -> AsyncGenerator[CallEvent, None]:
        return self._shout(call)

    async def _shout(self, call: RoutedCall[Shout]) -> AsyncGenerator[CallEvent, None]:
        target = call.targets[0]
        record = call.trail.add(AttemptRecord(target, time.monotonic()))
        yield Started(call.request_id, target.provider, target.model)
        yield TextDelta(call.request.text.upper())
        usage = Usage(input_tokens=len(call.request.text), output_tokens=len(call.request.text))
        record.usage = usage
        record.finish(Outcome.SUCCEEDED, time.monotonic())
        yield Completed(FinishReason.STOP, "stop", usage, tuple(call.trail.attempts))


def _config(tmp_path: Path, **changes: Any) -> Config:
    return Config(
        providers={"a": ProviderConfig("a", "openai-compatible", base_url="http://x")},
        database_url=f"sqlite:///{tmp_path}/ledger.db",
        **changes,
    )


def _engine() -> Orchestrator:
    return Orchestrator(
        {"a": Scripted("a", [TextDelta("hi"), Finish(FinishReason.STOP, "stop", Usage(3, 1))])}
    )


async def test_a_layer_and_a_call_type_join_by_assembly_alone(tmp_path: Path) -> None:
    Recording.seen = []
    prices = {"prices": {"a/m": {"input": 1.0, "output": 2.0}}}
    config = _config(tmp_path, policy=PolicyConfig.from_mapping(prices))
    assembly = await assemble(
        config,
        _engine(),
        bind_host="127.0.0.1",
        extra_layers=[Recording],
        call_types={Shout: ShoutHandler()},
    )
    try:
        path = assembly.path
        chat = [e async for e in path.stream(ChatCall("a/m", _hello()))]
        shout = [e async for e in path.stream(Call("a/m", Shout("quiet")))]
    finally:
        await assembly.aclose()  # flushes the ledger

    assert [type(c.request) for c in Recording.seen] == [ChatRequest, Shout]
    assert [e.text for e in shout if isinstance(e, TextDelta)] == ["QUIET"]
    done = shout[-1]
    assert isinstance(done, Completed) and isinstance(chat[-1], Completed)
    # the new call type went through the accounting layer like chat: priced and recorded
    assert done.cost_usd == pytest.approx((5 * 1.0 + 5 * 2.0) / 1e6)
    store = await open_store(config.database_url)
    try:
        (row,) = await store.totals([], None, None, None)
    finally:
        await store.aclose()
    assert row.requests == 2
    assert row.output_tokens == 1 + 5


async def test_a_call_type_without_a_handler_is_refused(tmp_path: Path) -> None:
    assembly = await assemble(_config(tmp_path), _engine(), bind_host="127.0.0.1")
    try:
        with pytest.raises(LlmeshError) as info:
            async for _ in assembly.path.stream(Call("a/m", Shout("x"))):
                pass
    finally:
        await assembly.aclose()
    assert info.value.reason is Reason.INVALID_REQUEST
    assert "Shout" in info.value.message


async def test_compose_puts_the_first_layer_outermost() -> None:
    order: list[str] = []

    def named(name: str) -> Any:
        class Named:
            def __init__(self, inner: Handler) -> None:
                self.inner = inner

            def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
                order.append(name)
                return self.inner.stream(call)

        return Named

    class Inner:
        async def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
            order.append("inner")
            yield TextDelta("")

    handler = compose(Inner(), [named("outer"), named("middle")])
    router = routing.Router(
        {"a": ProviderConfig("a", "openai-compatible", base_url="http://x")}, {}
    )
    [_ async for _ in handler.stream(router.route(ChatCall("a/m", _hello())))]
    assert order == ["outer", "middle", "inner"]


# -- routing happens once per call ----------------------------------------------------------


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts `Router.route` calls and model-name resolutions."""
    counts = {"route": 0, "resolve": 0}
    route, resolve = routing.Router.route, routing.resolve_model

    def counting_route(self: routing.Router, call: Any, **kw: Any) -> Any:
        counts["route"] += 1
        return route(self, call, **kw)

    def counting_resolve(*args: Any) -> Any:
        counts["resolve"] += 1
        return resolve(*args)

    monkeypatch.setattr(routing.Router, "route", counting_route)
    monkeypatch.setattr(routing, "resolve_model", counting_resolve)
    return counts


@pytest.mark.parametrize(
    ("model", "fallbacks", "max_cost", "names"),
    [
        ("a/m", (), None, 1),
        ("both", ("a/n",), None, 3),  # a route of two targets, then one fallback
        ("both", (), 1.0, 2),  # cost-capped routing narrows the routed call, no new lookup
    ],
)
async def test_the_model_name_is_routed_once_per_call(
    tmp_path: Path,
    counted: dict[str, int],
    model: str,
    fallbacks: tuple[str, ...],
    max_cost: float | None,
    names: int,
) -> None:
    config = _config(
        tmp_path,
        routes={"both": RouteConfig("both", ("a/m", "a/n"))},
        policy=PolicyConfig.from_mapping(
            {"prices": {"a/m": {"input": 1.0, "output": 1.0}, "a/n": {"input": 1, "output": 1}}}
        ),
    )
    assembly = await assemble(config, _engine(), bind_host="127.0.0.1")
    try:
        counted["route"] = counted["resolve"] = 0  # start-up validates the routes
        call = ChatCall(model, _hello(max_tokens=10), fallbacks, max_cost_usd=max_cost)
        events = [e async for e in assembly.path.stream(call)]
    finally:
        await assembly.aclose()
    assert isinstance(events[-1], Completed)
    assert counted["route"] == 1
    # each name looked up at most once; a name the router already resolved (its routes' at
    # start-up, or an earlier call's) not at all
    assert counted["resolve"] <= names


def _hello(**kw: Any) -> ChatRequest:
    return ChatRequest((Message(Role.USER, "hello"),), **kw)
