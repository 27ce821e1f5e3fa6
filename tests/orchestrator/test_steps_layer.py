"""The steps layer: no processor call for a route without steps, a refused call when the
processor cannot be reached, and route configuration of steps."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any

import pytest

from llmesh.services.common.config import ConfigError, ProviderConfig, parse_route
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.redaction import Redactor, StreamDetectors
from llmesh.services.common.step_settings import (
    SCREEN_RULES,
    RedactionMode,
    ScreenAction,
    StepsConfig,
    parse_steps,
)
from llmesh.services.core.call import Call, RoutedCall
from llmesh.services.core.caller import Caller
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import CallEvent, Completed, TextDelta, TokenLogprob, ToolCallDelta
from llmesh.services.core.policy import Policy
from llmesh.services.core.target import Target
from llmesh.services.core.trail import Trail
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.layers.steps import Processed, masked, restored
from llmesh.services.orchestrator.routing import Router
from llmesh.services.orchestrator.steps import Prepared, ProcessorClient
from llmesh.v1 import processor_pb2

STEPS = parse_steps("r", {"pre": ["redact"], "post": ["restore"]})


class Inner:
    """Replies with fixed events and records the requests it was given."""

    def __init__(self, events: list[CallEvent] | None = None) -> None:
        self.requests: list[Any] = []
        self.events = events or [TextDelta("ok")]

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        self.requests.append(call.request)
        return self._events()

    async def _events(self) -> AsyncGenerator[CallEvent, None]:
        for e in self.events:
            yield e
        yield Completed(FinishReason.STOP, "stop", Usage())


class Refusing(ProcessorClient):
    """A client that fails the test when called."""

    def __init__(self) -> None:
        self.address = "nowhere"

    async def prepare(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no processor call expected")


def routed(model: str) -> RoutedCall[ChatRequest]:
    request = ChatRequest(messages=(Message(Role.USER, "mail a@example.com"),))
    return RoutedCall(
        Call(model, request),
        (Target("emulator", "echo"),),
        Policy(),
        "req_1",
        Trail(started=time.monotonic()),
    )


async def test_a_route_without_steps_makes_no_processor_call_and_adds_no_wrapper() -> None:
    inner = Inner()
    layer = Processed(inner, steps_for={"private": STEPS}.get, client=Refusing())
    events = [e async for e in layer.stream(routed("plain"))]
    assert events[0] == TextDelta("ok") and inner.requests[0].messages[0].content.endswith(".com")


async def test_an_unreachable_processor_refuses_the_call_before_anything_is_sent() -> None:
    inner = Inner()
    client = ProcessorClient("127.0.0.1:1")
    layer = Processed(inner, steps_for={"private": STEPS}.get, client=client)
    with pytest.raises(LlmeshError) as info:
        async for _ in layer.stream(routed("private")):
            pass
    await client.aclose()
    assert info.value.reason is Reason.SERVICE_UNREACHABLE
    assert "processor" in str(info.value) and "127.0.0.1:1" in str(info.value)
    assert inner.requests == []


async def test_restored_flushes_held_text_and_tool_arguments_before_completion() -> None:
    async def events() -> AsyncGenerator[CallEvent, None]:
        yield TextDelta("to <EMA")
        yield ToolCallDelta(0, "c1", "send", '{"to":"<EMAIL_')
        yield ToolCallDelta(0, arguments_delta='1>"}')
        yield TextDelta("IL_1> and <EMAIL_")
        yield Completed(FinishReason.STOP, "stop", Usage())

    out = [e async for e in restored(events(), {"<EMAIL_1>": 'a"b@example.com'})]
    text = "".join(e.text for e in out if isinstance(e, TextDelta))
    args = "".join(e.arguments_delta for e in out if isinstance(e, ToolCallDelta))
    assert text == 'to a"b@example.com and <EMAIL_'
    assert args == '{"to":"a\\"b@example.com"}'  # escaped inside JSON
    assert isinstance(out[-1], Completed)


def test_steps_configuration() -> None:
    route = parse_route(
        "r",
        {
            "targets": ["emulator/echo"],
            "steps": {
                "pre": ["redact"],
                "redact": {
                    "mode": "block",
                    "detectors": ["email", "ip"],
                    "patterns": {"ticket": "TCK-[0-9]+"},
                    "words": {"project": ["Falcon"]},
                },
            },
        },
    )
    assert isinstance(route.steps, StepsConfig)
    assert route.steps.redact.mode is RedactionMode.BLOCK
    assert route.steps.redact.detectors == ("email", "ipv4", "ipv6")
    assert parse_route("r", {"targets": ["emulator/echo"]}).steps is None


@pytest.mark.parametrize(
    ("steps", "names"),
    [
        ({"pre": ["translate"]}, "steps.pre"),
        ({"pre": ["redact"], "post": ["restore"], "redact": {"mode": "mask"}}, "steps.post"),
        ({"pre": ["redact"], "redact": {"detectors": ["passport"]}}, "steps.redact.detectors"),
        ({"pre": ["redact"], "redact": {"patterns": {"x": "("}}}, "steps.redact.patterns.x"),
        ({"pre": ["redact"], "redact": {"patterns": {"email": "a"}}}, "steps.redact.patterns"),
        ({"pre": ["redact"], "redact": {"patterns": {"e": "a*"}}}, "steps.redact.patterns.e"),
        ({"pre": ["redact"], "redact": {"mode": "hide"}}, "steps.redact.mode"),
        ({"redact": {}}, "steps.redact"),
        ({"screen": {}}, "steps.screen"),
        ({"pre": ["screen"], "screen": {"action": "warn"}}, "steps.screen.action"),
        ({"pre": ["screen"], "screen": {"threshold": 0}}, "steps.screen.threshold"),
        ({"pre": ["screen"], "screen": {"action": "route"}}, "steps.screen.route_to"),
        ({"pre": ["screen"], "screen": {"route_to": "x"}}, "steps.screen.route_to"),
        ({"pre": ["screen"], "screen": {"rules": ["telepathy"]}}, "steps.screen.rules"),
        ({"pre": ["screen"], "screen": {"classifier": "a b"}}, "steps.screen.classifier"),
        ({"redact_output": {}}, "steps.redact_output"),
        ({"post": ["redact_output"], "redact_output": {"mode": "mask"}}, "steps.redact_output"),
        (
            {"post": ["redact_output"], "redact_output": {"detectors": ["dna"]}},
            "steps.redact_output.detectors",
        ),
        (
            {"post": ["redact_output"], "redact_output": {"patterns": {"p": "(?<=a+)b"}}},
            "steps.redact_output.patterns.p",
        ),
    ],
)
def test_bad_steps_are_refused_naming_the_key(steps: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigError, match=f"routes.r.{names}"):
        parse_route("r", {"targets": ["emulator/echo"], "steps": steps})


def test_screen_configuration() -> None:
    steps = parse_steps("r", {"pre": ["screen", "redact"]})
    assert steps is not None and steps.screen.action is ScreenAction.FLAG
    assert steps.screen.threshold == 0.5 and steps.screen.rules == SCREEN_RULES
    steps = parse_steps(
        "r",
        {
            "pre": ["screen"],
            "screen": {
                "action": "route",
                "threshold": 0.7,
                "route_to": "emulator/gpt-4o",
                "rules": ["reveal_system_prompt", "jailbreak"],
                "classifier": "pkg.mod:score",
            },
        },
    )
    assert steps is not None and steps.screen.action is ScreenAction.ROUTE
    assert steps.screen.rules == ("jailbreak", "reveal_system_prompt")
    assert steps.screen.route_to == "emulator/gpt-4o" and steps.screen.classifier == "pkg.mod:score"
    bad = parse_route(
        "r",
        {
            "targets": ["emulator/echo"],
            "steps": {"pre": ["screen"], "screen": {"action": "route", "route_to": "gpt-9"}},
        },
    )
    providers = {"emulator": ProviderConfig("emulator", "openai", models=("echo",))}
    with pytest.raises(LlmeshError) as info:  # a bad route_to fails at start, not per call
        Router(providers, {}, {"r": bad})
    assert info.value.reason is Reason.MODEL_NOT_FOUND and "gpt-9" in str(info.value)


class Screening(ProcessorClient):
    """Answers every Prepare with one screen decision."""

    def __init__(self, decision: str) -> None:
        self.address = "here"
        self.decision = decision

    async def prepare(
        self, messages: Any, steps: Any, timeout: Any, fit: Any = None, template: Any = None
    ) -> Prepared:
        d = processor_pb2.StepDecision(
            step="screen", decision=self.decision, score=0.84, rules=["jailbreak"]
        )
        return Prepared(tuple(messages), {}, (d,))


class Targeted(Inner):
    """Records the targets of each call."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[tuple[Target, ...]] = []

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        self.targets.append(call.targets)
        return super().stream(call)


@pytest.mark.parametrize("decision", ["flag", "route"])
async def test_a_route_decision_moves_the_call_to_route_to(decision: str) -> None:
    steps = parse_steps(
        "r", {"pre": ["screen"], "screen": {"action": "route", "route_to": "strict"}}
    )
    strict = (Target("emulator", "gpt-4o"),)
    inner = Targeted()
    layer = Processed(
        inner,
        steps_for={"private": steps}.get,
        client=Screening(decision),
        targets_for={"strict": strict}.__getitem__,
    )
    call = routed("private")
    events = [e async for e in layer.stream(call)]
    assert events[0] == TextDelta("ok")
    notes = call.trail.notes or []
    assert notes[0].startswith(f"screen: {decision} score=0.84 rules=jailbreak (")
    if decision == "route":
        assert inner.targets == [strict] and notes[1] == "screen: routed to strict"
    else:
        assert inner.targets == [(Target("emulator", "echo"),)] and len(notes) == 1


def test_output_redaction_configuration() -> None:
    steps = parse_steps(
        "r",
        {
            "post": ["redact_output"],
            "redact_output": {"detectors": ["secrets", "email"], "patterns": {"t": "T-[0-9]+"}},
        },
    )
    assert steps is not None and steps.masks_output and not steps.pre
    assert steps.redact_output.mode is RedactionMode.MASK
    assert steps.redact_output.detectors[-1] == "email" and "jwt" in steps.redact_output.detectors
    assert steps.redact_output.patterns == (("t", "T-[0-9]+"),)
    every = parse_steps("r", {"post": ["redact_output"]})
    assert every is not None and len(every.redact_output.detectors) == 13


def _deltas(*texts: str) -> list[TextDelta]:
    return [TextDelta(t) for t in texts]


async def test_masked_masks_values_split_across_deltas_and_tool_arguments() -> None:
    detectors = StreamDetectors(
        Redactor(parse_steps("r", {"post": ["redact_output"]}).redact_output)
    )  # type: ignore[union-attr]
    logprob = (TokenLogprob("x", -0.1),)

    async def events() -> AsyncGenerator[CallEvent, None]:
        yield TextDelta("Hi ", logprob)
        yield TextDelta("mail jane.d", logprob)
        yield TextDelta("oe@exam", logprob)
        yield ToolCallDelta(0, "c1", "send", '{"to":"bob@ex')
        yield TextDelta("ple.com, key sk-proj-", logprob)
        yield ToolCallDelta(0, arguments_delta='ample.org"}')
        yield TextDelta("abcdefghijklmnopqrstuvwxyz", logprob)
        yield Completed(FinishReason.STOP, "stop", Usage())

    trail = Trail(started=time.monotonic())
    out = [e async for e in masked(events(), detectors, trail)]
    texts = [e for e in out if isinstance(e, TextDelta)]
    assert "".join(e.text for e in texts) == "Hi mail [EMAIL], key [OPENAI_KEY]"
    assert texts[0].logprobs == logprob  # passed through untouched
    assert all(not e.logprobs for e in texts[1:])  # held or masked: never in the logprobs
    calls = [e for e in out if isinstance(e, ToolCallDelta)]
    assert calls[0].id == "c1" and calls[0].name == "send"
    assert "".join(e.arguments_delta for e in calls) == '{"to":"[EMAIL]"}'
    assert isinstance(out[-1], Completed)
    (note,) = trail.notes or []
    assert note.startswith("redact_output: mask email=2 openai_key=1 (")
    assert "jane" not in note and "bob" not in note


async def test_a_route_with_output_rules_masks_what_the_processor_answered() -> None:
    steps = parse_steps("r", {"post": ["redact_output"], "redact_output": {"detectors": ["email"]}})
    assert steps is not None

    class Answering(Refusing):
        async def prepare(self, messages: Any, *args: Any, **kwargs: Any) -> Prepared:
            return Prepared(tuple(messages), {}, (), "", output=steps.redact_output)

    inner = Inner([TextDelta("write to a@exa"), TextDelta("mple.com")])
    layer = Processed(inner, steps_for={"out": steps}.get, client=Answering())
    call = routed("out")
    events = [e async for e in layer.stream(call)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "write to [EMAIL]"
    assert inner.requests[0].messages[0].content == "mail a@example.com"  # input untouched
    assert call.trail.notes and call.trail.notes[-1].startswith("redact_output: mask email=1")


async def test_a_tenants_steps_apply_to_every_route_it_calls() -> None:
    tenant = parse_steps(
        "acme", {"post": ["redact_output"], "redact_output": {"detectors": ["email"]}}
    )
    assert tenant is not None
    seen: list[StepsConfig] = []

    class Answering(Refusing):
        async def prepare(
            self, messages: Any, steps: StepsConfig, *args: Any, **kw: Any
        ) -> Prepared:
            seen.append(steps)
            return Prepared(tuple(messages), {}, (), "", output=steps.redact_output)

    def call(model: str, who: str) -> RoutedCall[ChatRequest]:
        c = routed(model)
        return replace(c, call=replace(c.call, caller=Caller(tenant=who)))

    inner = Inner([TextDelta("to a@example.com")])
    layer = Processed(
        inner,
        steps_for={"private": STEPS}.get,
        client=Answering(),
        tenant_steps_for={"acme": tenant}.get,
    )
    plain = [e async for e in layer.stream(call("plain", "acme"))]  # a route without steps
    assert "".join(e.text for e in plain if isinstance(e, TextDelta)) == "to [EMAIL]"
    assert seen[-1] is tenant
    [e async for e in layer.stream(call("private", "acme"))]
    assert seen[-1].pre == ("redact",) and seen[-1].post == ("restore", "redact_output")
    others = Processed(
        inner, steps_for={}.get, client=Refusing(), tenant_steps_for={"acme": tenant}.get
    )
    out = [e async for e in others.stream(call("plain", "globex"))]  # no steps: no processor call
    assert "".join(e.text for e in out if isinstance(e, TextDelta)) == "to a@example.com"


def test_a_tenants_bad_route_to_fails_at_start() -> None:
    steps = parse_steps(
        "acme", {"pre": ["screen"], "screen": {"action": "route", "route_to": "gpt-9"}}
    )
    assert steps is not None
    providers = {"emulator": ProviderConfig("emulator", "openai", models=("echo",))}
    with pytest.raises(LlmeshError) as info:
        Router(providers, {}, {}, tenant_steps={"acme": steps})
    assert info.value.reason is Reason.MODEL_NOT_FOUND and "gpt-9" in str(info.value)
    assert Router(providers, {}, {}, tenant_steps={}).tenant_steps("acme") is None
