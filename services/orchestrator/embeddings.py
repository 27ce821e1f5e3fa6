"""The embeddings handler: an embeddings call tried on its targets in order.

Registered for `EmbeddingRequest` in the call path's dispatch by call type, inside the
same layers as chat (rate limits, accounting and the ledger, budgets). Each target gets
one attempt, recorded in the call's trail with the usage the provider reported (or an
estimate from the input length), so the ledger prices it: skipped while its circuit
breaker (the engine's `Breakers`) is open, admitted by the call's gates, then sent. A
failure falls back to the next target unless no other target can cure it (the caller's
bad request, deadline, cancel or budget), as chat fails over before its first token.
Retries of the same target and hedging are chat's alone.

The handler yields `Started`, one `Embeddings` with the vectors, then `Completed`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

from llmesh.services.common.config import Config, resolve_provider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.chat import FinishReason
from llmesh.services.core.embeddings import EmbeddingRequest, Embeddings
from llmesh.services.core.events import CallEvent, Completed, Started
from llmesh.services.core.trail import AttemptRecord, Outcome
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.attempts import NO_FALLBACK, NOT_SENT
from llmesh.services.orchestrator.estimate import estimate_input_tokens
from llmesh.services.orchestrator.providers.embeddings import EmbeddingsClient, embeddings_client
from llmesh.services.orchestrator.resilience import Breakers
from llmesh.services.telemetry.trace_attempts import AttemptSpans, attempt_spans, upstream_info
from llmesh.services.transport import Transport

__all__ = ["EmbeddingsHandler", "estimate_embedding_usage"]


def estimate_embedding_usage(request: EmbeddingRequest) -> Usage:
    """Input tokens estimated from the texts' length, for a provider that reports none."""
    return Usage(input_tokens=estimate_input_tokens(request), estimated=True)


class EmbeddingsHandler:
    """Serves `EmbeddingRequest` calls with one client per provider."""

    def __init__(
        self,
        clients: Mapping[str, EmbeddingsClient],
        breakers: Breakers,
        *,
        clock: Callable[[], float] = time.monotonic,
        spans: AttemptSpans | None = None,
    ) -> None:
        """`spans` traces each attempt (None: tracing off)."""
        self._clients = dict(clients)
        self._breakers = breakers
        self._clock = clock
        self._spans = spans

    @classmethod
    def from_config(
        cls,
        config: Config,
        breakers: Breakers,
        *,
        transports: Mapping[str, Transport] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> EmbeddingsHandler:
        """One client per configured provider (no connection opens before the first call)."""
        resolved = {
            name: resolve_provider(pc, config.emulator, env)
            for name, pc in config.providers.items()
        }
        clients = {name: embeddings_client(r, transports) for name, r in resolved.items()}
        upstreams = {
            name: upstream_info(name, r.config.kind, r.base_url) for name, r in resolved.items()
        }
        return cls(clients, breakers, spans=attempt_spans(config.telemetry, upstreams))

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events: `Started`, `Embeddings`, `Completed`; or `LlmeshError`."""
        return self._embed(call)

    async def _embed(self, call: RoutedCall[EmbeddingRequest]) -> AsyncGenerator[CallEvent, None]:
        request, trail, clock = call.request, call.trail, self._clock
        last: LlmeshError | None = None
        for target in call.targets:
            name = target.name
            record = trail.add(AttemptRecord(target, clock()))
            client = self._clients.get(target.provider)
            try:
                if client is None:
                    raise LlmeshError(
                        Reason.PROVIDER_NOT_CONFIGURED, f"provider {target.provider!r} not built"
                    )
                await self._breakers.check(name, call.request_id)
                for gate in call.admit:
                    await gate(record, request)
                t0 = clock()
                try:
                    sent = client.embed(target.model, request, timeout=call.remaining())
                    spans = self._spans
                    result = await (
                        sent if spans is None else spans.embedding(record, request, trail, sent)
                    )
                finally:
                    trail.upstream_wait += clock() - t0
            except LlmeshError as err:
                outcome = Outcome.SKIPPED if err.reason is Reason.CIRCUIT_OPEN else Outcome.FAILED
                record.finish(outcome, clock(), err.reason)
                if err.reason not in NOT_SENT:
                    await self._breakers.record_failure(
                        name,
                        err.reason,
                        err.message,
                        counted=call.call.client_retry == 0,
                        request_id=call.request_id,
                    )
                if err.reason in NO_FALLBACK:
                    raise
                last = err
                continue
            except BaseException:
                record.finish(Outcome.CANCELLED, clock())
                raise
            usage = result.usage or estimate_embedding_usage(request)
            record.usage = usage
            now = clock()
            record.ttft = now - record.started
            record.finish(Outcome.SUCCEEDED, now)
            await self._breakers.record_success(name, call.request_id)
            yield Started(call.request_id, target.provider, target.model)
            yield Embeddings(result.vectors)
            yield Completed(
                FinishReason.STOP,
                "",
                usage,
                tuple(trail.attempts),
                trail.overhead(clock()),
            )
            return
        if last is not None:
            raise last
        raise LlmeshError(Reason.MODEL_NOT_FOUND, f"no target for {call.call.model!r}")

    async def aclose(self) -> None:
        """Close every client's connections."""
        for client in self._clients.values():
            await client.aclose()
