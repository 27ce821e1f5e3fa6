"""The gRPC face of the processor: proto -> domain -> counting and fitting -> proto."""

from __future__ import annotations

import logging
from typing import Any, TypeAlias

import grpc
from llmesh.v1 import processor_pb2, processor_pb2_grpc

from services.common.errors import LlmeshError, Reason
from services.common.rpc_errors import abort
from services.processor.convert import count_request_from_proto, fit_request_from_proto
from services.processor.fit import fit_counted
from services.processor.tokenizers import Tokenizers

log = logging.getLogger("llmesh.processor")

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


# The generated base class is untyped (generated code is excluded from type checking).
class ProcessorServicer(processor_pb2_grpc.ProcessorServiceServicer):  # type: ignore[misc]
    """Implements `llmesh.v1.ProcessorService` over a set of `Tokenizers`."""

    def __init__(self, tokenizers: Tokenizers) -> None:
        self._tokenizers = tokenizers

    async def CountTokens(
        self, request: processor_pb2.CountTokensRequest, context: Context
    ) -> processor_pb2.CountTokensResponse:
        """Count the messages (framing and reply priming included), or else the text."""
        try:
            req = count_request_from_proto(request)
            counter = self._tokenizers.for_model(req.model)
            if req.messages:
                sizes = await counter.message_sizes(req.messages)
                tokens = sum(sizes) + counter.reply_priming
            else:
                tokens = await counter.count_text(req.text)
        except Exception as exc:
            await _fail(context, exc, "CountTokens")
            raise  # pragma: no cover - _fail aborts the call
        return processor_pb2.CountTokensResponse(
            tokens=tokens, tokenizer=counter.name, exact=counter.exact
        )

    async def FitContext(
        self, request: processor_pb2.FitContextRequest, context: Context
    ) -> processor_pb2.FitContextResponse:
        """Trim the conversation to the budget; the kept messages are the request's own."""
        try:
            req = fit_request_from_proto(request)
            counter = self._tokenizers.for_model(req.model)
            sizes = await counter.message_sizes(req.messages)
            fit = fit_counted(req.messages, sizes, req.max_tokens, counter.reply_priming)
        except Exception as exc:
            await _fail(context, exc, "FitContext")
            raise  # pragma: no cover - _fail aborts the call
        return processor_pb2.FitContextResponse(
            messages=[request.messages[i] for i in fit.kept_indices],
            tokens=fit.tokens,
            dropped_indices=fit.dropped_indices,
            dropped_tokens=fit.dropped_tokens,
            tokenizer=counter.name,
            exact=counter.exact,
        )


async def _fail(context: Context, exc: Exception, method: str) -> None:
    """Abort with the error's status; a bug is logged and becomes a bare INTERNAL."""
    if not isinstance(exc, LlmeshError):
        log.error("%s failed", method, exc_info=exc)
        exc = LlmeshError(Reason.INTERNAL, f"internal error: {type(exc).__name__}")
    await abort(context, exc)
