"""Several choices (``n`` > 1) for one /v1 chat completion: the call is made ``n`` times.

The mesh answers one choice per call, so the gateway starts ``n`` identical calls to the
orchestrator at once and merges their replies: whole replies become ``choices[0..n-1]``;
streams interleave their chunks, each with its choice's ``index`` under one ``id``, and end
with one usage chunk (with ``include_usage``) and ``[DONE]`` once every choice finished.
Each call is a call of its own to the mesh (its own attempts, usage record and cost), so
``usage`` is the sum of the ``n`` calls, prompt included ``n`` times; ``x-request-id`` and
the attempt headers are the first call's. If any call fails, the others are cancelled and
the reply is that error (before the stream started) or an error line (after).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import grpc

from llmesh.gateway.errors import openai_error_body, openai_error_response
from llmesh.gateway.inputs import CallOptions
from llmesh.gateway.openai_compat import CompletionRequest
from llmesh.gateway.openai_responses import DONE, ChunkEncoder, completion, error_line, usage_dict
from llmesh.gateway.responses import OrjsonResponse, Part
from llmesh.gateway.upstream import Upstream, call_headers, trail_headers
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.v1 import chat_pb2, orchestrator_pb2

__all__ = ["many_chunks", "many_completions"]


def _sum(usages: Sequence[chat_pb2.Usage]) -> chat_pb2.Usage:
    total = chat_pb2.Usage()
    for u in usages:
        total.input_tokens += u.input_tokens
        total.output_tokens += u.output_tokens
        total.cache_read_tokens += u.cache_read_tokens
        total.cache_write_tokens += u.cache_write_tokens
        total.reasoning_tokens += u.reasoning_tokens
        total.estimated = total.estimated or u.estimated
    return total


async def many_completions(
    upstream: Upstream,
    parsed: CompletionRequest,
    opts: CallOptions,
    created: int,
    extra_headers: dict[str, str],
) -> AsyncGenerator[Part, None]:
    """The whole reply of ``parsed.n`` calls, as one ``chat.completion``."""
    request = orchestrator_pb2.ChatRequest(input=parsed.input)
    calls = [
        upstream.orchestrator.Chat(request, timeout=opts.timeout, metadata=opts.metadata)
        for _ in range(parsed.n)
    ]
    try:
        replies = await asyncio.gather(*calls)
    except grpc.aio.AioRpcError as exc:
        response = openai_error_response(upstream.error(exc))
        response.headers.update(trail_headers(exc.trailing_metadata()))
        response.headers.update(extra_headers)
        yield response
        return
    finally:
        for call in calls:
            call.cancel()
    body: dict[str, Any] = completion(replies[0], parsed.model, created)
    body["choices"] = [
        {**completion(reply, parsed.model, created)["choices"][0], "index": i}
        for i, reply in enumerate(replies)
    ]
    body["usage"] = usage_dict(_sum([r.usage for r in replies]))
    headers = {
        **call_headers(replies[0].request_id, all(r.cache_hit for r in replies)),
        **trail_headers(await calls[0].trailing_metadata()),
        **extra_headers,
    }
    yield OrjsonResponse(body, headers=headers)


_Item = tuple[int, orchestrator_pb2.StreamChatResponse | BaseException | None]

QUEUE_SIZE = 32
"""Events read ahead of the client across all choices: a slow client holds the calls back
(as a single stream's reads do) instead of the gateway buffering whole replies."""


async def _pump(index: int, call: Any, queue: asyncio.Queue[_Item]) -> None:
    """Move one call's events (then None, or its error) into the shared queue."""
    try:
        while True:
            event = await call.read()
            if event is grpc.aio.EOF:
                await queue.put((index, None))
                return
            await queue.put((index, event))
    except grpc.aio.AioRpcError as exc:
        await queue.put((index, exc))


async def many_chunks(
    upstream: Upstream,
    parsed: CompletionRequest,
    opts: CallOptions,
    created: int,
    shared_id: str,
    extra_headers: dict[str, str],
) -> AsyncGenerator[Part, None]:
    """The interleaved chunk stream of ``parsed.n`` streamed calls."""
    request = orchestrator_pb2.StreamChatRequest(input=parsed.input)
    calls = [
        upstream.orchestrator.StreamChat(request, timeout=opts.timeout, metadata=opts.metadata)
        for _ in range(parsed.n)
    ]
    encoders = [
        ChunkEncoder(
            parsed.model,
            created,
            parsed.include_usage,
            shared_id,
            index=i,
            shared_id=True,
            last=False,
        )
        for i in range(parsed.n)
    ]
    queue: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_SIZE)
    pumps = [asyncio.ensure_future(_pump(i, c, queue)) for i, c in enumerate(calls)]
    started = False
    ended = 0
    try:
        while ended < len(calls):
            index, item = await queue.get()
            encoder = encoders[index]
            if item is None:
                ended += 1
                if not encoder.finished:
                    raise LlmeshError(
                        Reason.STREAM_INTERRUPTED, "an upstream stream ended without finishing"
                    )
                continue
            if isinstance(item, BaseException):
                raise item
            if not started and item.HasField("start"):  # the first call to start names the reply
                for other in encoders:
                    other.request_id = item.start.request_id or shared_id
            data = encoder.encode(item)
            if not started:
                started = True
                cache_hit = item.start.cache_hit if item.HasField("start") else False
                yield {**call_headers(encoder.request_id, cache_hit), **extra_headers}
            if data:
                yield data
        if parsed.include_usage:
            yield encoders[0].usage_chunk(_sum([e.final_usage for e in encoders]))
        yield DONE
    except (grpc.aio.AioRpcError, LlmeshError) as exc:
        err = upstream.error(exc) if isinstance(exc, grpc.aio.AioRpcError) else exc
        if not started:
            response = openai_error_response(err)
            response.headers.update(extra_headers)
            yield response
        else:
            yield error_line(openai_error_body(err))
    finally:
        for call in calls:
            call.cancel()
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
