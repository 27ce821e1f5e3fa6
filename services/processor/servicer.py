"""The gRPC face of the processor: proto -> domain -> counting, fitting, the steps -> proto.

Authentication and error answers are the `llmesh.services.common.rpc_guard` decorators' work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence

from llmesh.services.auth import Authenticator
from llmesh.services.common.errors import LlmeshError
from llmesh.services.common.media_settings import PartLimits
from llmesh.services.common.rpc_guard import Rpc, RpcGuard, unary
from llmesh.services.processor.convert import count_request_from_proto, fit_request_from_proto
from llmesh.services.processor.fit import fit_counted
from llmesh.services.processor.fit_step import fit_response
from llmesh.services.processor.models import ModelNames
from llmesh.services.processor.prepare import Preparer, restore
from llmesh.services.processor.tokenizers import TokenCounter, Tokenizers
from llmesh.services.processor.tool_tokens import tools_tokens
from llmesh.v1 import processor_pb2, processor_pb2_grpc

log = logging.getLogger("llmesh.processor")


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
        part_limits: PartLimits | None = None,
        screen_classifiers: Collection[str] = (),
    ) -> None:
        """`screen_classifiers`: dotted paths a screen step may load a classifier from."""
        self._tokenizers = tokenizers
        self._models = models
        self._limits = part_limits or PartLimits()
        self._preparer = Preparer(self._limits, classifiers=screen_classifiers)
        self.guard = RpcGuard(authenticator or Authenticator(None, required=False), log=log)
        """Authenticates and answers every call (see `llmesh.services.common.rpc_guard`)."""
        self.on_decisions: Callable[[Sequence[processor_pb2.StepDecision]], None] | None = None
        """Called with each Prepare's decisions (the metrics' counts)."""

    def _counter(self, model: str) -> TokenCounter:
        """The counter for a model the mesh routes."""
        if self._models is not None:
            model = self._models.resolve(model)
        return self._tokenizers.for_model(model)

    @unary()
    async def CountTokens(
        self, request: processor_pb2.CountTokensRequest, rpc: Rpc
    ) -> processor_pb2.CountTokensResponse:
        """Count the messages (framing and reply priming included), or else the text, plus
        the tools offered with them."""
        req = count_request_from_proto(request, self._limits)
        counter = self._counter(req.model)
        if req.messages:
            sizes = await counter.message_sizes(req.messages)
            tokens = sum(sizes) + counter.reply_priming
        else:
            tokens = await counter.count_text(req.text)
        tokens += await tools_tokens(counter, req.tools)
        return processor_pb2.CountTokensResponse(
            tokens=tokens, tokenizer=counter.name, exact=counter.exact
        )

    @unary()
    async def FitContext(
        self, request: processor_pb2.FitContextRequest, rpc: Rpc
    ) -> processor_pb2.FitContextResponse:
        """Trim the conversation to the budget; the kept messages are the request's own."""
        req = fit_request_from_proto(request, self._limits)
        counter = self._counter(req.model)
        sizes = await counter.message_sizes(req.messages)
        fit = fit_counted(req.messages, sizes, req.max_tokens, counter.reply_priming)
        return processor_pb2.FitContextResponse(
            messages=[request.messages[i] for i in fit.kept_indices],
            tokens=fit.tokens,
            dropped_indices=fit.dropped_indices,
            dropped_tokens=fit.dropped_tokens,
            tokenizer=counter.name,
            exact=counter.exact,
        )

    @unary()
    async def RenderTemplate(
        self, request: processor_pb2.RenderTemplateRequest, rpc: Rpc
    ) -> processor_pb2.RenderTemplateResponse:
        """Render a template version with its variables (see `Preparer.render`)."""
        messages, parameters = self._preparer.render(request.render)
        return processor_pb2.RenderTemplateResponse(messages=messages, parameters=parameters)

    @unary()
    async def Prepare(
        self, request: processor_pb2.PrepareRequest, rpc: Rpc
    ) -> processor_pb2.PrepareResponse:
        """Run the pre-call steps on the messages (see `llmesh.services.processor.prepare`);
        values found are counted per detector, never logged; a screening block is counted
        per rule before it fails the call."""
        try:
            response = self._preparer.prepare(request)
        except LlmeshError as exc:
            rules = exc.metadata.get("rules")
            if exc.metadata.get("step") == "screen" and rules and self.on_decisions is not None:
                blocked = processor_pb2.StepDecision(
                    step="screen", decision="block", rules=rules.split(",")
                )
                self.on_decisions([blocked])
            raise
        if "fit" in request.steps:
            await fit_response(request.fit, response, self._counter, self._limits)
        if self.on_decisions is not None:
            self.on_decisions(response.decisions)
        return response

    @unary()
    async def Redact(
        self, request: processor_pb2.RedactRequest, rpc: Rpc
    ) -> processor_pb2.RedactResponse:
        """The redact step alone (see `Preparer.redact`); values found are counted per
        detector, never logged."""
        response, decision = self._preparer.redact(request)
        if self.on_decisions is not None:
            self.on_decisions([decision])
        return response

    @unary()
    async def Restore(
        self, request: processor_pb2.RestoreRequest, rpc: Rpc
    ) -> processor_pb2.RestoreResponse:
        """The pseudonyms put back in the text and the messages (see `restore`)."""
        return restore(request)

    @unary()
    async def Screen(
        self, request: processor_pb2.ScreenRequest, rpc: Rpc
    ) -> processor_pb2.ScreenResponse:
        """The screen step alone (see `Preparer.screen`); matches are counted per rule and
        decision."""
        response, decision = self._preparer.screen(request)
        if self.on_decisions is not None:
            self.on_decisions([decision])
        return response
