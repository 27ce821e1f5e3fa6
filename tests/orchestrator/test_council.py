"""The council (fan-out), its core on in-memory providers (its proto mapping and
`StreamCouncil` on the real mesh: `test_council_grpc.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

import pytest

from llmesh.services.common.config import ProviderConfig
from llmesh.services.common.errors import LlmeshError, Reason
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
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.path import CallPath
from llmesh.services.orchestrator.routing import Router

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
