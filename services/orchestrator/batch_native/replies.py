"""Turning one provider batch result back into an llmesh response, with the existing parsers.

A chat reply body (OpenAI's ``chat.completion``, Anthropic's ``message``) becomes the
provider events the interactive path parses from it, folded into a ``ChatResponse`` as the
unary Chat RPC folds them; an OpenAI embeddings body becomes an ``EmbedResponse``. The
response's ``request_id`` is the item's ``custom_id``; its cost is left at zero for the
caller to price (at batch rates).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.embeddings import EmbeddingEncoding
from llmesh.services.core.events import CallEvent, Completed, Finish, ProviderEvent, Started
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.aggregate import collect
from llmesh.services.orchestrator.embeddings_convert import EmbedReply, embed_reply_to_proto
from llmesh.services.orchestrator.providers.embeddings_wire import from_embeddings_response
from llmesh.services.orchestrator.replies_convert import chat_reply_to_proto
from llmesh.v1 import embeddings_pb2, orchestrator_pb2

__all__ = ["chat_response", "embed_response", "malformed"]


def malformed(what: str) -> LlmeshError:
    """The error of a result the provider sent in a shape llmesh cannot read."""
    return LlmeshError(Reason.MALFORMED_RESPONSE, f"upstream sent a malformed batch result: {what}")


async def _events(started: Started, events: Sequence[ProviderEvent]) -> AsyncIterator[CallEvent]:
    yield started
    for event in events:
        if isinstance(event, Finish):
            yield Completed(
                event.reason,
                event.provider_reason,
                event.usage or Usage(),
                stop_sequence=event.stop_sequence,
            )
            return
        yield event


async def chat_response(
    custom_id: str, provider: str, body: Mapping[str, Any], events: Sequence[ProviderEvent]
) -> tuple[orchestrator_pb2.ChatResponse, Usage]:
    """The ``ChatResponse`` and usage of a reply `body` parsed into `events`."""
    model = body.get("model")
    started = Started(custom_id, provider, model if isinstance(model, str) else "")
    reply = await collect(_events(started, events))
    return chat_reply_to_proto(reply), reply.completed.usage


def embed_response(
    custom_id: str, provider: str, body: Any, encoding: EmbeddingEncoding
) -> tuple[embeddings_pb2.EmbedResponse, Usage]:
    """The ``EmbedResponse`` and usage of an OpenAI embeddings `body`."""
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list):
        raise malformed("an embeddings body without a data list")
    vectors, usage = from_embeddings_response(body, len(data))
    model = body.get("model")
    reply = EmbedReply(
        custom_id,
        provider,
        model if isinstance(model, str) else "",
        vectors,
        usage or Usage(),
        0.0,
    )
    return embed_reply_to_proto(reply, encoding), reply.usage
