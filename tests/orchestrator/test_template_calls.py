"""A call naming a template: its validation from the wire, the steps layer picking and
rendering the version (defaults only where the call set none), and the response cache
leaving it alone."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2

from llmesh.services.common.config import load_config
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.step_settings import StepsConfig
from llmesh.services.core.call import Call, RoutedCall, TemplateUse
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import CallEvent, Completed, TextDelta
from llmesh.services.core.policy import Policy
from llmesh.services.core.target import Target
from llmesh.services.core.trail import Trail
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.convert import chat_call_from_proto
from llmesh.services.orchestrator.layers.caching import Cached
from llmesh.services.orchestrator.layers.steps import Processed
from llmesh.services.orchestrator.response_cache import ResponseCache
from llmesh.services.orchestrator.steps import Prepared, ProcessorClient
from llmesh.services.templates import open_template_store, version_from_mapping
from llmesh.v1 import chat_pb2, processor_pb2, templates_pb2


class Inner:
    """Replies "ok" and records the calls it was given."""

    def __init__(self) -> None:
        self.calls: list[RoutedCall[Any]] = []

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        self.calls.append(call)
        return self._events()

    async def _events(self) -> AsyncGenerator[CallEvent, None]:
        yield TextDelta("ok")
        yield Completed(FinishReason.STOP, "stop", Usage())


class Rendering(ProcessorClient):
    """Answers Prepare as the processor would for a one-message template."""

    def __init__(self) -> None:
        self.address = "here"
        self.renders: list[processor_pb2.TemplateRender | None] = []
        self.fits: list[processor_pb2.FitRules | None] = []

    async def prepare(
        self, messages: Any, steps: Any, timeout: Any, fit: Any = None, template: Any = None
    ) -> Prepared:
        self.renders.append(template)
        self.fits.append(fit)
        params = templates_pb2.TemplateParameters(temperature=0.7)  # the layer needs not these
        first = Message(Role.SYSTEM, "rendered")
        return Prepared((first, *messages), {}, (), "", parameters=params if template else None)


def _inp(**fields: Any) -> chat_pb2.ChatInput:
    return chat_pb2.ChatInput(model="emulator/echo", **fields)


def _fields(err: LlmeshError) -> list[str]:
    return [v.field for v in err.violations]


def test_the_wire_form() -> None:
    variables = struct_pb2.Struct()
    variables.update({"n": 3, "who": "x", "xs": [1, 2.5]})
    call = chat_call_from_proto(_inp(template="t@2", template_variables=variables), True)
    assert call.template == TemplateUse("t", 2, {"n": 3, "who": "x", "xs": [1, 2.5]})
    assert call.request.messages == ()
    assert chat_call_from_proto(_inp(template="t"), True).template == TemplateUse("t", None, {})
    for inp, field in (
        (_inp(), "input.messages"),
        (_inp(template="T!"), "input.template"),
        (_inp(template="t@0"), "input.template"),
        (_inp(template_variables=variables), "input.template_variables"),
    ):
        with pytest.raises(LlmeshError) as caught:
            chat_call_from_proto(inp, True)
        assert field in _fields(caught.value)


def _routed(
    use: TemplateUse | None, model: str = "plain", **request: Any
) -> RoutedCall[ChatRequest]:
    req = ChatRequest(messages=(Message(Role.USER, "hi"),), **request)
    return RoutedCall(
        Call(model, req, metadata={"user": "u1"}, template=use),
        (Target("emulator", "echo"),),
        Policy(),
        "req_1",
        Trail(started=time.monotonic()),
    )


async def test_the_layer_picks_renders_and_fills_defaults(tmp_path: Path) -> None:
    store = open_template_store(f"sqlite:///{tmp_path}/t.db")
    try:
        raw = {"name": "t", "system": "s", "variables": ["who"]}
        await store.create(version_from_mapping(raw))
        defaults = {"temperature": 0.1, "max_tokens": 9, "stop": ["END"]}
        await store.create(version_from_mapping({**raw, "parameters": defaults}))
        inner, client = Inner(), Rendering()
        fitted = {"fitted": StepsConfig(pre=("fit",))}
        layer = Processed(inner, steps_for=fitted.get, client=client, templates=store)
        call = _routed(TemplateUse("t", None, {"who": "me"}), temperature=0.9)
        [_ async for _ in layer.stream(call)]
        render = client.renders[0]
        assert render is not None
        assert (render.template.name, render.template.version) == ("t", 2)
        assert dict(render.variables) == {"who": "me"}
        sent = inner.calls[0].request
        assert [m.content for m in sent.messages] == ["rendered", "hi"]
        assert (sent.temperature, sent.max_tokens, sent.stop) == (0.9, 9, ("END",))
        assert call.trail.template == ("t", 2)
        pinned = _routed(TemplateUse("t", 1, {"who": "me"}))
        [_ async for _ in layer.stream(pinned)]
        assert pinned.trail.template == ("t", 1)
        assert inner.calls[1].request.max_tokens is None  # version 1 has no defaults
        fit_call = _routed(TemplateUse("t", 2, {"who": "me"}), model="fitted")
        [_ async for _ in layer.stream(fit_call)]
        fit = client.fits[-1]
        assert fit is not None and fit.reserve_output == 9  # the default max_tokens
        with pytest.raises(LlmeshError) as caught:
            [_ async for _ in layer.stream(_routed(TemplateUse("gone")))]
        assert caught.value.reason is Reason.TEMPLATE_NOT_FOUND
        [_ async for _ in layer.stream(_routed(None))]
        assert len(client.renders) == 3  # no processor call without a template (or steps)
    finally:
        await store.aclose()


async def test_without_a_processor_a_template_call_is_refused_clearly() -> None:
    layer = Processed(Inner(), steps_for={}.get, client=None)
    with pytest.raises(LlmeshError) as caught:
        [_ async for _ in layer.stream(_routed(TemplateUse("t")))]
    assert caught.value.reason is Reason.PROVIDER_NOT_CONFIGURED
    assert "processor.address" in caught.value.message


async def test_the_response_cache_leaves_template_calls_alone() -> None:
    inner = Inner()
    cache = ResponseCache(max_entries=10, default_ttl=60)
    layer = Cached(inner, cache=cache, accounting=None, default_ttl=60)  # type: ignore[arg-type]
    for _ in range(2):
        [_ async for _ in layer.stream(_routed(TemplateUse("t", 1), temperature=0.0))]
    assert len(inner.calls) == 2  # both went through: neither stored nor served
    await cache.aclose()


def test_template_writers_are_the_admin_tenants(tmp_path: Path) -> None:
    assert load_config(None, env={}).admin_tenants == ()
    path = tmp_path / "c.yaml"
    path.write_text("auth: {admin_tenants: [ops]}\n")
    assert load_config(path, env={}).admin_tenants == ("ops",)


class CountingStore:
    """A template store that counts the versions read from it."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.gets: list[tuple[str, int | None]] = []

    async def get(self, name: str, version: int | None = None) -> Any:
        self.gets.append((name, version))
        return await self._store.get(name, version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_a_pinned_version_is_read_once_and_the_latest_every_time(tmp_path: Path) -> None:
    store = open_template_store(f"sqlite:///{tmp_path}/t.db")
    try:
        raw = {"name": "t", "system": "s", "variables": ["who"]}
        await store.create(version_from_mapping(raw))
        counting = CountingStore(store)
        client = Rendering()
        layer = Processed(Inner(), steps_for={}.get, client=client, templates=counting)
        for who in ("a", "b"):
            call = _routed(TemplateUse("t", 1, {"who": who}))
            [_ async for _ in layer.stream(call)]
            assert call.trail.template == ("t", 1)
        assert counting.gets == [("t", 1)]  # a stored version never changes
        renders = [r for r in client.renders if r is not None]
        assert [dict(r.variables) for r in renders] == [{"who": "a"}, {"who": "b"}]
        assert renders[0].template == renders[1].template
        assert renders[0].template.version == 1
        await store.create(version_from_mapping({**raw, "parameters": {"max_tokens": 5}}))
        for expected in (2, 2):  # the latest may change at any time: asked every call
            call = _routed(TemplateUse("t", None, {"who": "c"}))
            [_ async for _ in layer.stream(call)]
            assert call.trail.template == ("t", expected)
        assert counting.gets == [("t", 1), ("t", None), ("t", None)]
    finally:
        await store.aclose()
