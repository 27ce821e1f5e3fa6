"""The council (fan-out): in-memory providers for the core, the real mesh for `StreamCouncil`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from llmesh.services.common.config import ProviderConfig
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core.call import ChatCall
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role, Tool, ToolChoiceMode
from llmesh.services.core.events import (
    Completed,
    Finish,
    ProviderEvent,
    Started,
    TextDelta,
    UsageUpdate,
)
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.council import (
    DEFAULT_JUDGE_INSTRUCTIONS,
    JUDGE_BRANCH,
    BranchFailed,
    BranchItem,
    Council,
    Judge,
    Member,
    council_violations,
    member_call,
    stream_council,
)
from llmesh.services.orchestrator.council_convert import council_from_proto, council_item_to_proto
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.path import CallPath
from llmesh.services.orchestrator.routing import Router
from llmesh.v1 import chat_pb2, errors_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.mesh import Mesh

Action = Callable[[], Awaitable[None]]
Step = ProviderEvent | BaseException | float | Action
"""An event to yield, an exception to raise, seconds to sleep, or an action to await."""


def wait(event: asyncio.Event) -> Action:
    async def act() -> None:
        await event.wait()

    return act


def signal(event: asyncio.Event) -> Action:
    async def act() -> None:
        event.set()

    return act


class Gated:
    """A provider playing one script per call; it counts what it yielded and its closings."""

    def __init__(self, name: str, script: Sequence[Step]) -> None:
        self.name = name
        self.script = script
        self.calls: list[ChatRequest] = []
        self.yielded = 0
        self.closed = 0

    async def stream(
        self, model: str, request: ChatRequest, *, timeout: float | None
    ) -> AsyncGenerator[ProviderEvent, None]:
        self.calls.append(request)
        try:
            for step in self.script:
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, float):
                    await asyncio.sleep(step)
                elif callable(step):
                    await step()
                else:
                    self.yielded += 1
                    yield step
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        pass


def engine(*providers: Gated) -> CallPath:
    """The engine alone behind routing: the council's own behaviour, no other layer."""
    configs = {
        p.name: ProviderConfig(p.name, "openai-compatible", base_url="http://x") for p in providers
    }
    return CallPath(Router(configs, {}), Orchestrator({p.name: p for p in providers}))


def done(usage: Usage | None = None) -> Finish:
    return Finish(FinishReason.STOP, "stop", usage or Usage(3, 2))


def answer(*texts: str) -> list[Step]:
    return [*(TextDelta(t) for t in texts), done()]


SHARED = (Message(Role.SYSTEM, "shared context"), Message(Role.USER, "what is 2+2?"))


def council(
    *members: Member, judge: Judge | None = None, fail_fast: bool = False, **request: object
) -> Council:
    call = ChatCall("ignored", ChatRequest(SHARED, **request))  # type: ignore[arg-type]
    return Council(call, members, judge, fail_fast)


async def items_of(eng: CallPath, c: Council, **kw: object) -> list[BranchItem]:
    return [item async for item in stream_council(eng, c, **kw)]  # type: ignore[arg-type]


def by_branch(items: Sequence[BranchItem]) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for item in items:
        out.setdefault(item.branch, []).append(item.event)
    return out


def text_of(events: Sequence[object]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def no_other_tasks() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


FAIL = LlmeshError(Reason.CONTENT_FILTERED, "refused")  # not retried: the engine fails at once


# -- the core ---------------------------------------------------------------------------


async def test_branches_interleave_in_arrival_order() -> None:
    a_sent, b_sent, a_more = asyncio.Event(), asyncio.Event(), asyncio.Event()
    a_script = [TextDelta("a1"), signal(a_sent), wait(b_sent), TextDelta("a2"), signal(a_more)]
    b_script = [wait(a_sent), TextDelta("b1"), signal(b_sent), wait(a_more), TextDelta("b2")]
    a, b = Gated("a", [*a_script, done()]), Gated("b", [*b_script, done()])
    items = await items_of(engine(a, b), council(Member("x", "a/m"), Member("y", "b/m")))
    shape = [(i.branch, type(i.event).__name__, getattr(i.event, "text", "")) for i in items]
    assert shape == [
        ("x", "Started", ""),
        ("x", "TextDelta", "a1"),
        ("y", "Started", ""),
        ("y", "TextDelta", "b1"),
        ("x", "TextDelta", "a2"),
        ("x", "Completed", ""),
        ("y", "TextDelta", "b2"),
        ("y", "Completed", ""),
    ]
    started = [i.event for i in items if isinstance(i.event, Started)]
    assert started[0].request_id.endswith(".x") and started[1].request_id.endswith(".y")
    assert started[0].request_id.removesuffix(".x") == started[1].request_id.removesuffix(".y")


async def test_each_branch_ends_once_and_a_failure_does_not_end_the_others() -> None:
    a = Gated("a", [0.02, *answer("still ", "here")])
    b = Gated("b", [FAIL])
    c = Gated("c", [TextDelta("half"), LlmeshError(Reason.UPSTREAM_AUTH_FAILED, "key revoked")])
    items = await items_of(
        engine(a, b, c), council(Member("a", "a/m"), Member("b", "b/m"), Member("c", "c/m"))
    )
    got = by_branch(items)
    assert isinstance(got["a"][-1], Completed) and text_of(got["a"]) == "still here"
    assert got["b"] == [BranchFailed(Reason.CONTENT_FILTERED, "refused")]
    last = got["c"][-1]
    assert isinstance(last, BranchFailed) and last.reason is Reason.UPSTREAM_AUTH_FAILED
    for events in got.values():  # exactly one terminal item per branch, and it is the last
        terminals = [e for e in events if isinstance(e, Completed | BranchFailed)]
        assert terminals == [events[-1]]
    assert (a.closed, b.closed, c.closed) == (1, 1, 1)


async def test_a_failed_branch_carries_the_engines_partial_usage_in_full() -> None:
    used = Usage(5, 2, cache_write_tokens=4, reasoning_tokens=1)
    cut = LlmeshError(Reason.STREAM_INTERRUPTED, "cut")
    a = Gated("a", [TextDelta("half"), UsageUpdate(used), cut])
    got = by_branch(await items_of(engine(a), council(Member("a", "a/m"))))
    assert got["a"][-1] == BranchFailed(Reason.STREAM_INTERRUPTED, "cut", used)


async def test_fail_fast_cancels_the_other_branches_and_raises() -> None:
    a_started = asyncio.Event()
    a = Gated("a", [TextDelta("slow"), signal(a_started), 30.0, *answer("never")])
    b = Gated("b", [wait(a_started), FAIL])
    got: list[BranchItem] = []
    with pytest.raises(LlmeshError) as info:
        async for item in stream_council(
            engine(a, b), council(Member("a", "a/m"), Member("b", "b/m"), fail_fast=True)
        ):
            got.append(item)
    assert info.value.reason is Reason.CONTENT_FILTERED
    assert got[-1] == BranchItem("b", BranchFailed(Reason.CONTENT_FILTERED, "refused"))
    assert not any(isinstance(i.event, Completed) for i in got)
    assert a.closed == 1 and a.yielded == 1
    assert no_other_tasks()


async def test_judge_reads_every_answer_and_streams_last() -> None:
    a = Gated("a", answer("four"))
    b = Gated("b", [FAIL])
    c = Gated("c", [0.01, *answer("2+2 ", "= 4")])
    j = Gated("j", answer("The answer ", "is 4."))
    c_ = council(
        Member("alpha", "a/m", persona="be terse"),
        Member("beta", "b/m"),
        Member("gamma", "c/m"),
        judge=Judge("j/m"),
    )
    items = await items_of(engine(a, b, c, j), c_)
    judge_items = [i for i in items if i.branch == JUDGE_BRANCH]
    first_judge = items.index(judge_items[0])
    assert items[first_judge:] == judge_items, "the judge streams after every member ended"
    assert isinstance(judge_items[0].event, Started) and isinstance(
        judge_items[-1].event, Completed
    )
    assert text_of([i.event for i in judge_items]) == "The answer is 4."
    (request,) = j.calls
    assert request.messages[: len(SHARED)] == SHARED  # the conversation, without personas
    assert len(request.messages) == len(SHARED) + 1
    prompt = request.messages[-1]
    assert prompt.role is Role.USER
    assert '<answer branch="alpha">\nfour\n</answer>' in prompt.content
    assert '<answer branch="gamma">\n2+2 = 4\n</answer>' in prompt.content
    assert '<answer branch="beta" failed="CONTENT_FILTERED">' in prompt.content
    assert "refused" in prompt.content
    assert prompt.content.endswith(DEFAULT_JUDGE_INSTRUCTIONS)
    assert "be terse" not in prompt.content


async def test_judge_instructions_and_forced_tool_choice() -> None:
    a = Gated("a", answer("x"))
    j = Gated("j", answer("y"))
    c_ = council(
        Member("only", "a/m"),
        judge=Judge("j/m", "Pick the shortest."),
        tools=(Tool("lookup"),),
        tool_choice=ToolChoiceMode.TOOL,
        tool_choice_name="lookup",
    )
    await items_of(engine(a, j), c_)
    assert a.calls[0].tool_choice is ToolChoiceMode.TOOL  # members keep the caller's choice
    judged = j.calls[0]
    assert judged.tools == (Tool("lookup"),)  # the shared prefix keeps its tools
    assert judged.tool_choice is ToolChoiceMode.NONE and judged.tool_choice_name == ""
    assert judged.messages[-1].content.endswith("Pick the shortest.")


async def test_judge_is_not_called_when_no_member_answered() -> None:
    a = Gated("a", [FAIL])
    j = Gated("j", answer("unused"))
    items = await items_of(engine(a, j), council(Member("a", "a/m"), judge=Judge("j/m")))
    assert j.calls == []
    last = items[-1]
    assert last.branch == JUDGE_BRANCH and isinstance(last.event, BranchFailed)
    assert last.event.reason is Reason.CONTENT_FILTERED


async def test_persona_follows_the_shared_system_messages() -> None:
    base = ChatCall(
        "ignored",
        ChatRequest(
            (
                Message(Role.SYSTEM, "long shared document"),
                Message(Role.SYSTEM, "house rules"),
                Message(Role.USER, "q"),
                Message(Role.ASSISTANT, "a"),
                Message(Role.USER, "q2"),
            ),
        ),
    )
    with_persona = member_call(base, Member("m", "a/m", "You are a skeptic."))
    assert with_persona.model == "a/m"
    assert [m.content for m in with_persona.request.messages] == [
        "long shared document",
        "house rules",
        "You are a skeptic.",
        "q",
        "a",
        "q2",
    ]
    assert with_persona.request.messages[2].role is Role.SYSTEM
    plain = member_call(base, Member("m", "a/m"))
    assert plain.request.messages == base.request.messages
    no_system = ChatCall("ignored", ChatRequest((Message(Role.USER, "q"),)))
    assert [m.role for m in member_call(no_system, Member("m", "a/m", "p")).request.messages] == [
        Role.SYSTEM,
        Role.USER,
    ]


async def test_members_send_the_persona_and_the_shared_prefix() -> None:
    a = Gated("a", answer("x"))
    b = Gated("b", answer("y"))
    await items_of(
        engine(a, b), council(Member("a", "a/m", "persona A"), Member("b", "b/m", "persona B"))
    )
    for provider, persona in ((a, "persona A"), (b, "persona B")):
        sent = provider.calls[0].messages
        assert sent[0] == SHARED[0]  # identical shared system prefix in every branch
        assert sent[1] == Message(Role.SYSTEM, persona)
        assert sent[2:] == SHARED[1:]


async def test_cancelling_the_consumer_cancels_every_branch() -> None:
    providers = [Gated(n, [TextDelta(n), 30.0, *answer("never")]) for n in ("a", "b", "c")]
    eng = engine(*providers)
    seen: set[str] = set()
    all_started = asyncio.Event()

    async def consume() -> None:
        c_ = council(*(Member(p.name, f"{p.name}/m") for p in providers), judge=Judge("a/m"))
        async for item in stream_council(eng, c_):
            if isinstance(item.event, TextDelta):
                seen.add(item.branch)
                if len(seen) == 3:
                    all_started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(all_started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [p.closed for p in providers] == [1, 1, 1]
    assert no_other_tasks()


async def test_closing_the_iterator_early_closes_every_branch() -> None:
    providers = [Gated(n, [TextDelta(n), 30.0, *answer("never")]) for n in ("a", "b")]
    items = stream_council(
        engine(*providers), council(*(Member(p.name, f"{p.name}/m") for p in providers))
    )
    first = await anext(items)
    assert first.branch in ("a", "b")
    await items.aclose()
    assert no_other_tasks()
    assert all(p.closed == len(p.calls) for p in providers)


async def test_a_slow_consumer_pauses_each_branch() -> None:
    fast = Gated("a", [*(TextDelta(str(i)) for i in range(500)), done()])
    items = stream_council(engine(fast), council(Member("a", "a/m")), buffer=4)
    await anext(items)
    await asyncio.sleep(0.05)  # a consumer that does not read: the branch must wait
    assert fast.yielded <= 4 + 3, f"{fast.yielded} events read ahead of the consumer"
    rest = [i async for i in items]
    assert fast.yielded == 501 and isinstance(rest[-1].event, Completed)


async def test_deadline_bounds_the_judge_too() -> None:
    a = Gated("a", answer("x"))
    j = Gated("j", answer("y"))
    now = [0.0]

    def clock() -> float:
        return now[0]

    async def run() -> list[BranchItem]:
        out = []
        async for item in stream_council(
            engine(a, j), council(Member("a", "a/m"), judge=Judge("j/m")), timeout=5, clock=clock
        ):
            out.append(item)
            if isinstance(item.event, Completed):
                now[0] = 10.0  # the members took the whole deadline
        return out

    items = await run()
    assert j.calls == []
    assert items[-1] == BranchItem(
        JUDGE_BRANCH, BranchFailed(Reason.DEADLINE_EXCEEDED, "the council's deadline passed")
    )


async def test_unknown_models_fail_before_anything_starts() -> None:
    a = Gated("a", answer("x"))
    with pytest.raises(LlmeshError) as info:
        await items_of(engine(a), council(Member("a", "a/m"), Member("b", "nope/m")))
    assert info.value.reason is Reason.MODEL_NOT_FOUND
    assert info.value.metadata["field"] == "members[1].model"
    with pytest.raises(LlmeshError) as info:
        await items_of(engine(a), council(Member("a", "a/m"), judge=Judge("nope/j")))
    assert info.value.metadata["field"] == "judge.model"
    assert a.calls == []


def test_council_violations_name_each_field() -> None:
    bad = council_violations(
        [
            Member("a", "x/m"),
            Member("a", ""),
            Member(JUDGE_BRANCH, "x/m"),
            Member("no spaces", "x/m"),
        ],
        Judge(" "),
    )
    assert [v.field for v in bad] == [
        "members[1].model",
        "members[1].name",
        "members[2].name",
        "members[3].name",
        "judge.model",
    ]
    assert "duplicate" in bad[1].description and "reserved" in bad[2].description
    assert [v.field for v in council_violations([], None)] == ["members"]


# -- proto mapping --------------------------------------------------------------------


def _input(text: str = "hello council", **kw: object) -> chat_pb2.ChatInput:
    return chat_pb2.ChatInput(
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=text)],
        **kw,
    )


def test_council_from_proto_defaults_names_and_ignores_the_input_model() -> None:
    request = orchestrator_pb2.StreamCouncilRequest(
        input=_input(model="whatever", temperature=0.5),
        members=[
            orchestrator_pb2.CouncilMember(model="a/m", persona="p"),
            orchestrator_pb2.CouncilMember(name="named", model=" b/m "),
            orchestrator_pb2.CouncilMember(model="c/m"),
        ],
        judge=orchestrator_pb2.CouncilJudge(model="j/m"),
        fail_fast=True,
    )
    c = council_from_proto(request, max_request_bytes=1 << 20)
    assert [(m.name, m.model, m.persona) for m in c.members] == [
        ("branch-0", "a/m", "p"),
        ("named", "b/m", ""),
        ("branch-2", "c/m", ""),
    ]
    assert c.judge == Judge("j/m") and c.fail_fast
    assert c.call.request.temperature == 0.5
    assert c.call.request.messages == (Message(Role.USER, "hello council"),)


def test_council_from_proto_reports_every_bad_field_at_once() -> None:
    request = orchestrator_pb2.StreamCouncilRequest(
        input=chat_pb2.ChatInput(temperature=9),
        members=[
            orchestrator_pb2.CouncilMember(model="a/m"),
            orchestrator_pb2.CouncilMember(),
            orchestrator_pb2.CouncilMember(name="judge", model="a/m"),
        ],
        judge=orchestrator_pb2.CouncilJudge(),
    )
    with pytest.raises(LlmeshError) as info:
        council_from_proto(request, max_request_bytes=1 << 20)
    assert info.value.reason is Reason.INVALID_REQUEST
    assert [v.field for v in info.value.violations] == [
        "input.messages",
        "input.temperature",
        "members[1].model",
        "members[2].name",
        "judge.model",
    ]
    with pytest.raises(LlmeshError) as info:
        council_from_proto(orchestrator_pb2.StreamCouncilRequest(), max_request_bytes=1 << 20)
    assert [v.field for v in info.value.violations] == ["input", "members"]
    big = orchestrator_pb2.StreamCouncilRequest(input=_input("x" * 100))
    with pytest.raises(LlmeshError) as info:
        council_from_proto(big, max_request_bytes=50)
    assert info.value.reason is Reason.INVALID_REQUEST


def test_council_items_to_proto() -> None:
    failed = council_item_to_proto(
        BranchItem("b", BranchFailed(Reason.OVERLOADED, "busy", Usage(5, 1)))
    )
    assert failed.branch == "b" and failed.WhichOneof("body") == "error"
    assert failed.error.reason == errors_pb2.ERROR_REASON_OVERLOADED
    assert failed.error.message == "busy" and failed.error.usage.input_tokens == 5
    assert not council_item_to_proto(
        BranchItem("b", BranchFailed(Reason.OVERLOADED, "busy"))
    ).error.HasField("usage")
    delta = council_item_to_proto(BranchItem("a", TextDelta("hi")))
    assert delta.branch == "a" and delta.event.text_delta.text == "hi"


# -- StreamCouncil over the real mesh ---------------------------------------------------


def _member(name: str, model: str, persona: str = "") -> orchestrator_pb2.CouncilMember:
    return orchestrator_pb2.CouncilMember(name=name, model=model, persona=persona)


async def _council_call(
    mesh: Mesh, request: orchestrator_pb2.StreamCouncilRequest, timeout: float = 30
) -> list[orchestrator_pb2.StreamCouncilResponse]:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        return [r async for r in stub.StreamCouncil(request, timeout=timeout)]


def _texts(responses: Sequence[orchestrator_pb2.StreamCouncilResponse]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in responses:
        if r.WhichOneof("body") == "event" and r.event.WhichOneof("event") == "text_delta":
            out[r.branch] = out.get(r.branch, "") + r.event.text_delta.text
    return out


async def test_stream_council_over_the_mesh(mesh: Mesh) -> None:
    await asyncio.to_thread(mesh.set_fault, "council-overloaded", "overloaded")
    request = orchestrator_pb2.StreamCouncilRequest(
        input=_input("what is the capital of France"),
        members=[
            _member("echo", "emulator/echo", "You are a geographer."),
            _member("openai", "openai/gpt-4o-mini"),
            _member("busy", "anthropic/council-overloaded"),
        ],
        judge=orchestrator_pb2.CouncilJudge(model="emulator/echo"),
    )
    responses = await _council_call(mesh, request)
    branches = [r.branch for r in responses]
    assert set(branches) == {"echo", "openai", "busy", "judge"}
    last = {r.branch: r for r in responses}
    assert last["busy"].WhichOneof("body") == "error"
    assert last["busy"].error.reason == errors_pb2.ERROR_REASON_OVERLOADED
    for name in ("echo", "openai", "judge"):
        assert last[name].event.WhichOneof("event") == "finish", name
    texts = _texts(responses)
    assert texts["echo"] == texts["openai"] == "what is the capital of France"
    judge = texts["judge"]
    assert '<answer branch="echo">\nwhat is the capital of France\n</answer>' in judge
    assert '<answer branch="openai">\nwhat is the capital of France\n</answer>' in judge
    assert '<answer branch="busy" failed="OVERLOADED">' in judge
    first_judge = branches.index("judge")
    assert set(branches[first_judge:]) == {"judge"}
    assert responses[first_judge].event.start.request_id.endswith(".judge")


async def test_stream_council_validation_is_an_aip193_status(mesh: Mesh) -> None:
    request = orchestrator_pb2.StreamCouncilRequest(
        input=_input(), members=[_member("a", "emulator/echo"), _member("b", "")]
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _council_call(mesh, request)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in status.details if d.Is(bad.DESCRIPTOR))
    assert [v.field for v in bad.field_violations] == ["members[1].model"]

    unknown = orchestrator_pb2.StreamCouncilRequest(
        input=_input(), members=[_member("a", "emulator/echo"), _member("b", "nowhere/x")]
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _council_call(mesh, unknown)
    err = from_rpc_error(info.value)
    assert err.reason is Reason.MODEL_NOT_FOUND and err.metadata["field"] == "members[1].model"


async def test_stream_council_fail_fast_ends_with_the_first_error(mesh: Mesh) -> None:
    await asyncio.to_thread(mesh.set_fault, "council-ff-busy", "overloaded")
    await asyncio.to_thread(mesh.set_fault, "council-ff-stall", "stall", after=1)
    stats = await asyncio.to_thread(mesh.stats)
    before = stats.get("by_model", {}).get("council-ff-stall", {}).get("disconnects", 0)
    request = orchestrator_pb2.StreamCouncilRequest(
        input=_input("a b c d"),
        members=[
            _member("stalled", "openai/council-ff-stall"),
            _member("busy", "anthropic/council-ff-busy"),
        ],
        fail_fast=True,
    )
    got: list[orchestrator_pb2.StreamCouncilResponse] = []
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for r in stub.StreamCouncil(request, timeout=30):
                got.append(r)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert from_rpc_error(info.value).reason is Reason.OVERLOADED
    assert got[-1].branch == "busy" and got[-1].error.reason == errors_pb2.ERROR_REASON_OVERLOADED
    started = time.monotonic()
    while True:  # the stalled branch's upstream stream was closed
        stats = await asyncio.to_thread(mesh.stats)
        if stats.get("by_model", {}).get("council-ff-stall", {}).get("disconnects", 0) > before:
            break
        assert time.monotonic() - started < 5, "the cancelled branch's upstream stayed open"
        await asyncio.sleep(0.02)
