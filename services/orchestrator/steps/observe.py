"""Each processor step's decision and time, seen: in the metrics and on the call's span.

The trail's notes (the ``llmesh-steps`` trailer) are written by the steps layer; this adds
the counter of steps by step and decision (``llmesh_steps_total``), the histogram of step
time (``llmesh_step_duration_seconds``), the reply's masked values per detector
(``llmesh_redactions_total``; the processor counts the input's) and, on the call's span (the
current span while the layer runs), an ``llmesh.step`` event per step and
``llmesh.step.<step>.*`` attributes. Detector names and counts only: never a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry import trace

from llmesh.services.common.step_settings import DETECTORS
from llmesh.services.telemetry import Metrics

__all__ = ["StepObserver"]


class StepObserver:
    """Records step decisions in `metrics` (when on) and on the current span (when
    recording)."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics

    def decided(
        self,
        step: str,
        decision: str,
        seconds: float | None,
        *,
        counts: Mapping[str, int] | None = None,
        score: float | None = None,
        rules: Sequence[str] = (),
        output: bool = False,
    ) -> None:
        """One step's decision; `seconds` None when unknown (a step that failed the call in
        the processor); `output`: `counts` are values masked in the reply."""
        metrics = self._metrics
        if metrics is not None:
            metrics.steps.add(1, step, decision)
            if seconds is not None:
                metrics.step_duration.record(seconds, step)
            if output and counts:
                for detector, n in counts.items():
                    metrics.redactions.add(n, detector if detector in DETECTORS else "custom")
        span = trace.get_current_span()
        if not span.is_recording():
            return
        prefix = f"llmesh.step.{step}"
        event: dict[str, str | float | list[str]] = {
            "llmesh.step.name": step,
            "llmesh.step.decision": decision,
        }
        attributes: dict[str, str | float | bool | list[str]] = {f"{prefix}.decision": decision}
        if seconds is not None:
            event["llmesh.step.duration_ms"] = attributes[f"{prefix}.duration_ms"] = round(
                seconds * 1000, 3
            )
        if counts:
            found = [f"{k}={v}" for k, v in sorted(counts.items())]
            event["llmesh.step.counts"] = attributes[f"{prefix}.counts"] = found
        if score is not None:
            event["llmesh.step.score"] = attributes[f"{prefix}.score"] = round(score, 4)
        if rules:
            event["llmesh.step.rules"] = attributes[f"{prefix}.rules"] = list(rules)
        if step == "screen" and decision == "flag":
            attributes["llmesh.step.screen.flagged"] = True
        span.add_event("llmesh.step", event)
        span.set_attributes(attributes)
