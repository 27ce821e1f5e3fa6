"""Fan-out ("council"): one conversation to several models at once, their streams interleaved.

`stream_council` runs one `Orchestrator.stream` per member concurrently and yields
`BranchItem(branch, event)` pairs in arrival order. Each branch ends with its own terminal
item: the engine's `Completed`, or a `BranchFailed` for an `LlmeshError`. A failing branch
leaves the others running unless `fail_fast`, in which case the failure item is yielded,
the other branches are cancelled and the error is raised. An optional judge runs once every
member has ended, on the original conversation plus a user message holding each member's
answer, and streams as one more branch named ``judge``.

Each branch may have at most `buffer` items waiting for the consumer, so a slow consumer
pauses the branches (and, through them, the upstream reads) instead of growing a queue.
Closing or cancelling the consumer cancels every branch task, which closes its upstream
stream, before the iterator finishes closing.

Persona layout and prompt caching: a persona is a system message inserted right after the
conversation's leading system messages, so the request is ``tools, shared system messages,
persona, the rest of the conversation``. Anthropic caches prefixes in the order tools ->
system -> messages, and its adapter gathers every system message into ``system``; a persona
placed first would change the very first block and no member could share a cached prefix.
Placed after the shared system messages, the prefix ``tools + shared system`` is identical
in every member (and in the judge), so a long shared context sent as system message(s) stays
cacheable across the whole council (a cache breakpoint on the last shared system message,
when llmesh places them, is a prefix common to all branches). Shared context sent in user
messages comes after the persona and is only shared between members without a persona.
Keeping the system messages first and contiguous also suits chat templates of local servers
that refuse a system message after the first user turn.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.core.call import ChatCall, RoutedCall
from llmesh.services.core.chat import ChatRequest, Message, Role, ToolChoiceMode
from llmesh.services.core.events import (
    CallEvent,
    Completed,
    Switched,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from llmesh.services.core.ids import new_request_id
from llmesh.services.core.policy import MidStreamPolicy
from llmesh.services.core.trail import Trail
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.path import CallPath

__all__ = [
    "DEFAULT_BUFFER",
    "DEFAULT_JUDGE_INSTRUCTIONS",
    "JUDGE_BRANCH",
    "BranchFailed",
    "BranchItem",
    "Council",
    "Judge",
    "Member",
    "council_violations",
    "default_branch_name",
    "judge_prompt",
    "member_call",
    "stream_council",
]

log = logging.getLogger("llmesh.orchestrator.council")

JUDGE_BRANCH = "judge"
"""The judge's branch name; reserved, no member may use it."""

DEFAULT_BUFFER = 16
"""The most items one branch may have waiting for the consumer."""

DEFAULT_JUDGE_INSTRUCTIONS = (
    "Synthesize the best answer to the conversation above from these answers: keep what is "
    "correct and useful, resolve their disagreements, and reply to the last user message "
    "directly, without mentioning the answers or their authors."
)
"""What the judge is asked to do when the caller gives no instructions."""

_BRANCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""Branch names: 1-64 letters, digits, ``_``, ``.`` or ``-``, starting with a letter or digit."""


@dataclass(frozen=True, slots=True)
class Member:
    """One branch of a council: its name in events, its model and an optional persona."""

    name: str
    model: str
    persona: str = ""
    """A system prompt for this branch only; see the module docstring for its placement."""


@dataclass(frozen=True, slots=True)
class Judge:
    """The optional last branch that reads every member's answer and writes one."""

    model: str
    instructions: str = ""
    """What to do with the answers; `DEFAULT_JUDGE_INSTRUCTIONS` when empty."""


@dataclass(frozen=True, slots=True)
class Council:
    """A validated council: the shared call (its model is ignored), members, judge, policy."""

    call: ChatCall
    """The shared conversation and parameters; fallbacks and metadata apply to every branch."""
    members: tuple[Member, ...]
    judge: Judge | None = None
    fail_fast: bool = False
    """End the council with the first branch error, cancelling the other branches."""


@dataclass(frozen=True, slots=True)
class BranchFailed:
    """The terminal item of a branch that failed."""

    reason: Reason
    message: str
    usage: Usage | None = None
    """The last usage the branch's stream reported before it failed, if any."""


class BranchItem(NamedTuple):
    """One item of a council stream: the branch it belongs to, and the event."""

    branch: str
    event: CallEvent | BranchFailed


def default_branch_name(index: int) -> str:
    """The name of member `index` (from 0) when the caller gives none."""
    return f"branch-{index}"


def council_violations(members: Sequence[Member], judge: Judge | None) -> list[FieldViolation]:
    """Every structural problem of a council's members and judge (paths as in the proto)."""
    bad: list[FieldViolation] = []
    if not members:
        bad.append(FieldViolation("members", "must contain at least one member"))
    seen: set[str] = set()
    for i, m in enumerate(members):
        if not m.model.strip():
            bad.append(FieldViolation(f"members[{i}].model", "must name a model"))
        if m.name == JUDGE_BRANCH:
            bad.append(FieldViolation(f"members[{i}].name", f"{JUDGE_BRANCH!r} is reserved"))
        elif not _BRANCH_NAME.fullmatch(m.name):
            bad.append(
                FieldViolation(
                    f"members[{i}].name",
                    "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or "
                    "digit",
                )
            )
        elif m.name in seen:
            bad.append(FieldViolation(f"members[{i}].name", f"duplicate branch name {m.name!r}"))
        seen.add(m.name)
    if judge is not None and not judge.model.strip():
        bad.append(FieldViolation("judge.model", "must name a model"))
    return bad


def member_call(base: ChatCall, member: Member) -> ChatCall:
    """The call one member makes: the shared call on its model, with its persona if any."""
    messages = base.request.messages
    if member.persona:
        lead = 0
        while lead < len(messages) and messages[lead].role is Role.SYSTEM:
            lead += 1
        persona = Message(Role.SYSTEM, member.persona)
        messages = (*messages[:lead], persona, *messages[lead:])
    return replace(base, model=member.model, request=replace(base.request, messages=messages))


@dataclass(slots=True)
class _Answer:
    """What one branch produced, for the judge."""

    text: list[str] = field(default_factory=list)
    tools: dict[int, list[str]] = field(default_factory=dict)
    failure: BranchFailed | None = None

    def add(self, event: CallEvent) -> None:
        if isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, ToolCallDelta):
            parts = self.tools.setdefault(event.index, ["", ""])
            parts[0] = parts[0] or event.name
            parts[1] += event.arguments_delta
        elif isinstance(event, Switched) and event.policy is MidStreamPolicy.RESTART:
            self.text.clear()  # the next target starts over
            self.tools.clear()

    def render(self) -> str:
        out = "".join(self.text)
        for _, (name, args) in sorted(self.tools.items()):
            out += f"\n[tool call: {name} {args or '{}'}]"
        return out.strip()


def judge_prompt(answers: Sequence[tuple[str, str | BranchFailed]], instructions: str) -> str:
    """The user message the judge receives: every member's answer by branch, then the task."""
    parts = [f"{len(answers)} assistants answered the conversation above independently."]
    for name, answer in answers:
        if isinstance(answer, BranchFailed):
            parts.append(
                f'<answer branch="{name}" failed="{answer.reason.value}">\n'
                f"(no answer: {answer.message})\n</answer>"
            )
        else:
            parts.append(f'<answer branch="{name}">\n{answer}\n</answer>')
    parts.append(instructions.strip() or DEFAULT_JUDGE_INSTRUCTIONS)
    return "\n\n".join(parts)


def _judge_call(base: ChatCall, judge: Judge, prompt: str) -> ChatCall:
    """The judge's call: the conversation without personas, then the answers as a user turn.

    The tools stay (the prefix stays shared and tool turns in the history stay valid), but a
    forced tool choice becomes NONE: the judge must answer in text.
    """
    request = base.request
    choice = request.tool_choice
    if choice in (ToolChoiceMode.REQUIRED, ToolChoiceMode.TOOL):
        request = replace(request, tool_choice=ToolChoiceMode.NONE, tool_choice_name="")
    messages = (*request.messages, Message(Role.USER, prompt))
    return replace(base, model=judge.model, request=replace(request, messages=messages))


class _Queued(NamedTuple):
    item: BranchItem
    error: LlmeshError | None


class _Branches:
    """The running branch tasks, feeding one queue with per-branch credit."""

    def __init__(
        self,
        path: CallPath,
        deadline: float | None,
        request_id: str,
        buffer: int,
        clock: Callable[[], float],
    ) -> None:
        self._path = path
        self._deadline = deadline
        self._request_id = request_id
        self._buffer = buffer
        self._clock = clock
        self.queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self.credit: dict[str, asyncio.Semaphore] = {}
        self.answers: dict[str, _Answer] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, call: RoutedCall[ChatRequest]) -> None:
        self.credit[name] = asyncio.Semaphore(self._buffer)
        self.answers[name] = _Answer()
        self.tasks[name] = asyncio.create_task(self._run(name, call), name=f"council:{name}")

    async def _put(
        self, name: str, event: CallEvent | BranchFailed, err: LlmeshError | None
    ) -> None:
        await self.credit[name].acquire()
        self.queue.put_nowait(_Queued(BranchItem(name, event), err))

    async def _run(self, name: str, call: RoutedCall[ChatRequest]) -> None:
        answer = self.answers[name]
        last_usage: Usage | None = None
        try:
            now = self._clock()
            timeout = None if self._deadline is None else self._deadline - now
            if timeout is not None and timeout <= 0:
                raise LlmeshError(Reason.DEADLINE_EXCEEDED, "the council's deadline passed")
            branch = replace(
                call,
                request_id=f"{self._request_id}.{name}",
                trail=Trail(started=time.monotonic()),
                timeout=timeout,
                opened=time.monotonic(),
            )
            events = self._path.handler.stream(branch)
            try:
                async for event in events:
                    answer.add(event)
                    if isinstance(event, UsageUpdate):
                        last_usage = event.usage
                    await self._put(name, event, None)
                    if isinstance(event, Completed):
                        return
            finally:
                await _aclose(events)  # on cancellation too: this closes the upstream stream
            raise LlmeshError(Reason.STREAM_INTERRUPTED, "the branch ended without finishing")
        except LlmeshError as exc:
            error = exc
        except Exception as exc:  # a bug in one branch must not take the others down
            log.exception("council branch %s failed", name)
            error = LlmeshError(Reason.INTERNAL, f"internal error: {type(exc).__name__}")
        answer.failure = BranchFailed(error.reason, error.message, error.usage or last_usage)
        await self._put(name, answer.failure, error)

    async def cancel(self) -> None:
        """Cancel every branch task and wait for them (and their upstream streams) to end."""
        pending = [t for t in self.tasks.values() if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


async def stream_council(
    path: CallPath,
    council: Council,
    *,
    timeout: float | None = None,
    request_id: str | None = None,
    buffer: int = DEFAULT_BUFFER,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[BranchItem, None]:
    """Stream every branch of `council`, interleaved; see the module docstring.

    Raises `LlmeshError` before anything starts for an invalid council (INVALID_REQUEST) or an
    unknown model (MODEL_NOT_FOUND, naming the field in its metadata), and, with `fail_fast`,
    the first branch error after that branch's `BranchFailed` item. `timeout` bounds the whole
    council, judge included; branch ``name`` gets the request id ``<request_id>.<name>``.
    """
    if buffer < 1:
        raise ValueError("buffer must be at least 1")
    bad = council_violations(council.members, council.judge)
    if bad:
        summary = "; ".join(f"{v.field}: {v.description}" for v in bad)
        raise LlmeshError(
            Reason.INVALID_REQUEST, f"invalid council: {summary}", violations=tuple(bad)
        )
    calls = [
        (m.name, _route(path, member_call(council.call, m), f"members[{i}].model"))
        for i, m in enumerate(council.members)
    ]
    judge = None
    if council.judge is not None:
        judge = _route(path, replace(council.call, model=council.judge.model), "judge.model")

    deadline = None if timeout is None else clock() + timeout
    branches = _Branches(path, deadline, request_id or new_request_id(), buffer, clock)
    try:
        for name, call in calls:
            branches.start(name, call)
        open_members = len(calls)
        judging = False
        while open_members or judging:
            queued = await branches.queue.get()
            item = queued.item
            branches.credit[item.branch].release()
            yield item
            if not isinstance(item.event, Completed | BranchFailed):
                continue
            if queued.error is not None and council.fail_fast:
                raise queued.error
            if judging:
                return
            open_members -= 1
            if open_members == 0 and council.judge is not None and judge is not None:
                judging = True
                _start_judge(branches, council, council.judge, judge)
    finally:
        await branches.cancel()


def _start_judge(
    branches: _Branches, council: Council, judge: Judge, routed: RoutedCall[ChatRequest]
) -> None:
    """Start the judge branch (`routed` is the judge's call, routed up front)."""
    answers: list[tuple[str, str | BranchFailed]] = []
    for m in council.members:
        a = branches.answers[m.name]
        answers.append((m.name, a.failure if a.failure is not None else a.render()))
    if not any(isinstance(a, str) for _, a in answers):
        # Nothing to judge: do not spend a call; the judge branch fails like its members.
        first = next(a for _, a in answers if isinstance(a, BranchFailed))
        failed = BranchFailed(
            first.reason, f"no member answered, so the judge was not called: {first.message}"
        )
        branches.credit[JUDGE_BRANCH] = asyncio.Semaphore(1)
        branches.queue.put_nowait(_Queued(BranchItem(JUDGE_BRANCH, failed), None))
        return
    prompt = judge_prompt(answers, judge.instructions)
    branches.start(JUDGE_BRANCH, replace(routed, call=_judge_call(council.call, judge, prompt)))


async def _aclose(events: AsyncIterator[CallEvent]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


def _route(path: CallPath, call: ChatCall, where: str) -> RoutedCall[ChatRequest]:
    """The call routed; an unknown model's error names the request field (`where`)."""
    try:
        return path.route(call)
    except LlmeshError as err:
        err.metadata.setdefault("field", where)
        raise
