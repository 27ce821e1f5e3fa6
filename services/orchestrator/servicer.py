"""The gRPC face of the orchestrator: proto -> domain -> engine -> proto, nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, TypeAlias

import grpc
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from services.auth import Authenticator
from services.common.call_metadata import retry_count
from services.common.errors import FieldViolation, LlmeshError, Reason
from services.common.request_decoding import Undecodable, checks_decoding
from services.common.rpc_errors import abort
from services.core import Caller
from services.core.call import ChatCall
from services.core.events import Completed
from services.core.ids import new_request_id
from services.core.trail import Trail
from services.ledger import LedgerStore
from services.orchestrator.aggregate import collect
from services.orchestrator.convert import (
    attempts_to_json,
    chat_call_from_proto,
    event_to_proto,
    finish_to_proto,
    usage_to_proto,
)
from services.orchestrator.council import stream_council
from services.orchestrator.council_convert import council_from_proto, council_item_to_proto
from services.orchestrator.deadline import Deadline
from services.orchestrator.engine import Orchestrator
from services.orchestrator.path import CallPath

log = logging.getLogger("llmesh.orchestrator")

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):  # type: ignore[misc]
    """Implements `llmesh.v1.OrchestratorService` over an `Orchestrator`."""

    def __init__(
        self,
        path: CallPath,
        engine: Orchestrator,
        *,
        authenticator: Authenticator,
        max_request_bytes: int,
        usage_store: LedgerStore | None = None,
    ) -> None:
        self._path = path
        self._engine = engine
        self._auth = authenticator
        self._usage = usage_store
        self._max_request_bytes = max_request_bytes
        self._active: set[asyncio.Task[Any]] = set()
        self._shutting_down = False

    async def drain(self, grace: float) -> None:
        """Let in-flight calls finish for up to `grace` seconds, then end the rest.

        Calls still running are cancelled (closing their upstream streams) and answered
        with UNAVAILABLE / SHUTTING_DOWN, so no client mistakes a cut stream for a reply.
        """
        if self._active:
            await asyncio.wait(list(self._active), timeout=grace)
        self._shutting_down = True
        leftovers = list(self._active)
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=5)

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._active.discard(task)

    async def _caller(self, context: Context) -> Caller:
        """Who the call acts for (UNAUTHENTICATED when auth is on and no valid key came)."""
        principal = await self._auth.authenticate(context.invocation_metadata() or ())
        return Caller(principal.tenant, principal.key_id)

    @staticmethod
    def _as(caller: Caller, call: ChatCall) -> ChatCall:
        """The call acting for `caller`. A key's tenant is fixed; without keys the request's
        ``tenant`` metadata names it."""
        if not caller.key_id:
            caller = Caller(call.metadata.get("tenant") or caller.tenant, "")
        return replace(call, caller=caller)

    def _answers(self, exc: asyncio.CancelledError, deadline: Deadline | None) -> bool:
        """Whether a cancelled call still gets an answer: its deadline or a shutdown ended it.

        A cancellation by the caller going away needs none. The deadline's own cancellation
        is taken back (`uncancel`), so the answer can still be sent.
        """
        if deadline is not None and deadline.expired:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                task.uncancel()
            return True
        return self._shutting_down

    def _failure(
        self, exc: BaseException, request_id: str = "", deadline: Deadline | None = None
    ) -> LlmeshError:
        """The error to answer for an exception escaping the engine, with the request id."""
        err = self._error(exc, deadline)
        if request_id:
            err.metadata.setdefault("request_id", request_id)
        return err

    def _error(self, exc: BaseException, deadline: Deadline | None) -> LlmeshError:
        if isinstance(exc, LlmeshError):
            return exc
        if isinstance(exc, asyncio.CancelledError) and deadline is not None and deadline.expired:
            return LlmeshError(
                Reason.DEADLINE_EXCEEDED, "the call's deadline passed before the reply finished"
            )
        if isinstance(exc, asyncio.CancelledError):
            return LlmeshError(
                Reason.SHUTTING_DOWN,
                "the server is shutting down; the call was stopped",
                retry_after=1.0,
            )
        log.error("call failed", exc_info=exc)
        return LlmeshError(Reason.INTERNAL, f"internal error: {type(exc).__name__}")

    def _call(self, request: Any, context: Context, caller: Caller) -> ChatCall:
        size = request.ByteSize()
        if size > self._max_request_bytes:
            raise LlmeshError(
                Reason.INVALID_REQUEST,
                f"request is {size} bytes; the limit is {self._max_request_bytes}",
                violations=(
                    FieldViolation("input", f"larger than {self._max_request_bytes} bytes"),
                ),
            )
        call = self._as(caller, chat_call_from_proto(request.input, request.HasField("input")))
        retry = retry_count(context.invocation_metadata())
        return replace(call, client_retry=retry) if retry else call

    @checks_decoding
    async def StreamChat(
        self, request: orchestrator_pb2.StreamChatRequest, context: Context
    ) -> AsyncIterator[orchestrator_pb2.StreamChatResponse]:
        """Stream events; an error ends the stream with an AIP-193 status."""
        trail = Trail(started=time.monotonic())
        request_id = new_request_id()
        deadline = Deadline.of(context.time_remaining())
        with self._tracked(), _armed(deadline):
            try:
                call = self._call(request, context, await self._caller(context))
                events = self._path.stream(
                    call, request_id=request_id, trail=trail, timeout=_remaining(deadline)
                )
                async with contextlib.aclosing(events):
                    async for event in events:
                        if type(event) is Completed and deadline is not None:
                            deadline.disarm()  # the reply is whole: nothing to cut any more
                        yield event_to_proto(event)
                context.set_trailing_metadata(_trailers(trail))
            except asyncio.CancelledError as exc:
                if not self._answers(exc, deadline):
                    raise  # the caller went away: nothing to answer
                await abort(context, self._failure(exc, request_id, deadline), _trailers(trail))
            except Exception as exc:  # a bug must not kill the server or leak details
                await abort(context, self._failure(exc, request_id), _trailers(trail))

    @checks_decoding
    async def Chat(
        self, request: orchestrator_pb2.ChatRequest, context: Context
    ) -> orchestrator_pb2.ChatResponse:
        """Aggregate the same stream into one reply."""
        trail = Trail(started=time.monotonic())
        request_id = new_request_id()
        deadline = Deadline.of(context.time_remaining())
        with self._tracked(), _armed(deadline):
            try:
                call = self._call(request, context, await self._caller(context))
                events = self._path.stream(
                    call, request_id=request_id, trail=trail, timeout=_remaining(deadline)
                )
                async with contextlib.aclosing(events):  # settles the call before we answer
                    reply = await collect(events)
                    if deadline is not None:
                        deadline.disarm()  # the reply is whole: closing settles, not cuts
                context.set_trailing_metadata(_trailers(trail))
            except asyncio.CancelledError as exc:
                if not self._answers(exc, deadline):
                    raise
                await abort(context, self._failure(exc, request_id, deadline), _trailers(trail))
                raise  # pragma: no cover - abort raises
            except Exception as exc:
                await abort(context, self._failure(exc, request_id), _trailers(trail))
                raise  # pragma: no cover
        return orchestrator_pb2.ChatResponse(
            request_id=reply.started.request_id,
            provider=reply.started.provider,
            model=reply.started.model,
            message=chat_pb2.Message(
                role=chat_pb2.ROLE_ASSISTANT,
                content=reply.text,
                tool_calls=[
                    chat_pb2.ToolCall(id=c.id, name=c.name, arguments=c.arguments)
                    for c in reply.tool_calls
                ],
            ),
            finish_reason=finish_to_proto(reply.completed.reason),
            provider_finish_reason=reply.completed.provider_reason,
            usage=usage_to_proto(reply.completed.usage),
            cache_hit=reply.completed.cache_hit,
        )

    async def ListModels(
        self, request: orchestrator_pb2.ListModelsRequest, context: Context
    ) -> orchestrator_pb2.ListModelsResponse:
        """Every listed model and alias."""
        try:
            await self._caller(context)
        except LlmeshError as err:
            await abort(context, err)
        return orchestrator_pb2.ListModelsResponse(
            models=[
                orchestrator_pb2.ModelInfo(
                    name=e.name,
                    provider=e.target.provider,
                    provider_model=e.target.model,
                    alias_for=e.alias_for,
                )
                for e in self._path.router.entries()
            ]
        )

    @checks_decoding
    async def StreamCouncil(
        self, request: orchestrator_pb2.StreamCouncilRequest, context: Context
    ) -> AsyncIterator[orchestrator_pb2.StreamCouncilResponse]:
        """Stream every branch's events; a validation or fail-fast error ends with a status."""
        with self._tracked():
            try:
                caller = await self._caller(context)
                if type(request) is Undecodable:
                    raise request.error
                council = council_from_proto(request, max_request_bytes=self._max_request_bytes)
                council = replace(council, call=self._as(caller, council.call))
                items = stream_council(self._path, council, timeout=context.time_remaining())
                async with contextlib.aclosing(items):
                    async for item in items:
                        yield council_item_to_proto(item)
            except asyncio.CancelledError as exc:
                if not self._shutting_down:
                    raise  # the caller went away: the branches are already cancelled
                await abort(context, self._failure(exc))
            except Exception as exc:
                await abort(context, self._failure(exc))

    async def ListTargets(
        self, request: orchestrator_pb2.ListTargetsRequest, context: Context
    ) -> orchestrator_pb2.ListTargetsResponse:
        """Breaker, in-flight and queue state of every configured or used target."""
        try:
            await self._caller(context)
            views = {v.name: v for v in await self._engine.breakers.views()}
        except Exception as exc:
            await abort(context, self._failure(exc))
            raise  # pragma: no cover
        names = set(views) | {e.target.name for e in self._path.router.entries()}
        limiter = self._engine.limiter
        out = []
        for name in sorted(names):
            view = views.get(name)
            status = orchestrator_pb2.TargetStatus(
                name=name,
                breaker_state=_BREAKER_STATES[view.state if view else "closed"],
                failure_count=view.failure_count if view else 0,
                in_flight=limiter.in_flight(name),
                queued=limiter.queued(name),
            )
            if view is not None and view.seconds_to_half_open is not None:
                status.time_to_half_open.FromTimedelta(
                    datetime.timedelta(seconds=view.seconds_to_half_open)
                )
            out.append(status)
        return orchestrator_pb2.ListTargetsResponse(targets=out)

    async def GetUsage(
        self, request: orchestrator_pb2.GetUsageRequest, context: Context
    ) -> orchestrator_pb2.GetUsageResponse:
        """Ledger totals; a caller holding a key sees only its own tenant."""
        try:
            caller = await self._caller(context)
            if self._usage is None:
                raise LlmeshError(Reason.PROVIDER_NOT_CONFIGURED, "no usage ledger is configured")
            groups = [_GROUPS[g] for g in request.group_by if g in _GROUPS]
            tenant = caller.tenant if caller.key_id else (request.tenant or None)
            rows = await self._usage.totals(
                groups,
                request.since.ToSeconds() + request.since.nanos / 1e9
                if request.HasField("since")
                else None,
                request.until.ToSeconds() + request.until.nanos / 1e9
                if request.HasField("until")
                else None,
                tenant,
            )
        except Exception as exc:
            await abort(context, self._failure(exc))
            raise  # pragma: no cover
        return orchestrator_pb2.GetUsageResponse(totals=[_total_to_proto(r) for r in rows])


_GROUPS = {
    orchestrator_pb2.USAGE_GROUPING_TENANT: "tenant",
    orchestrator_pb2.USAGE_GROUPING_KEY: "key",
    orchestrator_pb2.USAGE_GROUPING_MODEL: "model",
    orchestrator_pb2.USAGE_GROUPING_DAY: "day",
}


def _total_to_proto(row: Any) -> orchestrator_pb2.UsageTotal:
    return orchestrator_pb2.UsageTotal(
        tenant=row.tenant or "",
        key_id=row.key_id or "",
        model=row.model or "",
        day=row.day or "",
        requests=row.requests,
        failed=row.failed,
        usage=chat_pb2.Usage(
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cache_read_tokens=row.cache_read_tokens,
            cache_write_tokens=row.cache_write_tokens,
            reasoning_tokens=row.reasoning_tokens,
        ),
        cost_usd=row.cost_usd,
        cache_savings_usd=row.cache_savings_usd,
    )


_BREAKER_STATES = {
    "closed": orchestrator_pb2.BREAKER_STATE_CLOSED,
    "open": orchestrator_pb2.BREAKER_STATE_OPEN,
    "half-open": orchestrator_pb2.BREAKER_STATE_HALF_OPEN,
}


def _remaining(deadline: Deadline | None) -> float | None:
    return None if deadline is None else deadline.remaining()


@contextlib.contextmanager
def _armed(deadline: Deadline | None) -> Iterator[None]:
    """The deadline armed against the current task for the block's duration."""
    if deadline is None:
        yield
        return
    deadline.arm()
    try:
        yield
    finally:
        deadline.disarm()


def _trailers(trail: Trail) -> list[tuple[str, str]]:
    """The attempt trail and llmesh's overhead as gRPC trailing metadata."""
    overhead = trail.overhead(time.monotonic())
    return [
        ("llmesh-attempts", attempts_to_json(trail.attempts)),
        ("llmesh-overhead-ms", f"{overhead * 1000:.3f}"),
    ]
