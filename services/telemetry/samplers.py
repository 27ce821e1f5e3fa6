"""The lean tracer's samplers: whether a new span is sampled, decided as a boolean from
its parent's context and its trace id, as the SDK's samplers llmesh offers decide
(``always_on``, ``always_off``, ``traceidratio``, and their ``parentbased_`` forms)."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.trace import SpanContext, TraceFlags

__all__ = ["Sampler", "always_off", "always_on", "parent_based", "ratio_sampler"]

_TRACE_ID_LIMIT = (1 << 64) - 1

Sampler = Callable[[SpanContext | None, int], bool]
"""Whether a new span is sampled, from its parent's context (None: a root) and trace id."""


def always_on(parent: SpanContext | None, trace_id: int) -> bool:
    """Every span sampled."""
    return True


def always_off(parent: SpanContext | None, trace_id: int) -> bool:
    """No span sampled."""
    return False


def ratio_sampler(ratio: float) -> Sampler:
    """A `ratio` of traces sampled, decided by the trace id's low 64 bits as the SDK's
    ``TraceIdRatioBased`` decides (so every process keeps the same traces)."""
    bound = round(ratio * (_TRACE_ID_LIMIT + 1))

    def sample(parent: SpanContext | None, trace_id: int) -> bool:
        return trace_id & _TRACE_ID_LIMIT < bound

    return sample


def parent_based(root: Sampler) -> Sampler:
    """The parent's decision when there is a parent; `root`'s for a root span."""

    def sample(parent: SpanContext | None, trace_id: int) -> bool:
        if parent is None:
            return root(parent, trace_id)
        return bool(parent.trace_flags & TraceFlags.SAMPLED)

    return sample
