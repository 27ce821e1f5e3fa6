"""The gRPC face of the processor: proto -> domain -> counting and fitting -> proto."""

from __future__ import annotations

import logging
from typing import Any, TypeAlias

import grpc
from llmesh.v1 import processor_pb2, processor_pb2_grpc

from services.auth import Authenticator
from services.common.errors import LlmeshError, Reason
from services.common.rpc_errors import abort
from services.processor.convert import count_request_from_proto, fit_request_from_proto
from services.processor.fit import fit_counted
from services.processor.models import ModelNames
from services.processor.tokenizers import TokenCounter, Tokenizers

log = logging.getLogger("llmesh.processor")

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


# The generated base class is untyped (generated code is excluded from type checking).
class ProcessorServicer(processor_pb2_grpc.ProcessorServiceServicer):  # type: ignore[misc]
    """Implements `llmesh.v1.ProcessorService` over a set of `Tokenizers`.

    Every call is authenticated first (UNAUTHENTICATED without a valid key when keys
    exist); with `models`, a model of an unconfigured provider is MODEL_NOT_FOUND.
    """

    def __init__(
        self,
        tokenizers: Tokenizers,
        *,
        authenticator: Authenticator | None = None,
        models: ModelNames | None = None,
    ) -> None:
        self._tokenizers = tokenizers
        self._auth = authenticator or Authenticator(None, required=False)
        self._models = models

    def _counter(self, model: str) -> TokenCounter:
        """The counter for a model the mesh routes."""
        if self._models is not None:
            model = self._models.resolve(model)
        return self._tokenizers.for_model(model)

    async def CountTokens(
        self, request: processor_pb2.CountTokensRequest, context: Context
    ) -> processor_pb2.CountTokensResponse:
        """Count the messages (framing and reply priming included), or else the text."""
        try:
            await self._auth.authenticate(context.invocation_metadata() or ())
            req = count_request_from_proto(request)
            counter = self._counter(req.model)
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
            await self._auth.authenticate(context.invocation_metadata() or ())
            req = fit_request_from_proto(request)
            counter = self._counter(req.model)
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
