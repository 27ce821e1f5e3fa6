"""The attempt trail: every try of every target within one call, and llmesh's own overhead."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmesh.services.core.events import Finish

__all__ = ["AttemptRecord", "Outcome", "Settlement", "Trail", "attempt_json"]

from llmesh.services.core.reasons import Reason
from llmesh.services.core.target import Target
from llmesh.services.core.usage import Usage


class Outcome(enum.Enum):
    """How one attempt ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    RUNNING = "running"


@dataclass(slots=True)
class AttemptRecord:
    """One try of one target; times are seconds on the engine's clock."""

    target: Target
    started: float
    hedged: bool = False
    retry: bool = False
    outcome: Outcome = Outcome.RUNNING
    reason: Reason | None = None
    ended: float | None = None
    ttft: float | None = None
    """Seconds from the start to the first token, when one came."""
    usage: Usage | None = None
    """What the attempt consumed, as the provider reported it (None: not reported)."""
    output_chars: int = 0
    """Characters of output relayed, for estimating usage the provider never reported."""
    terminal: Finish | None = None
    """The provider's terminal event (finish reason, response id and model), once the
    attempt succeeded."""
    pick: str = ""
    """Why a pool put this deployment where it stood (or left it out), e.g. ``latency 1/3:
    cost 0.0040 (...)``; empty outside pools."""
    detail: str = ""
    """Why the attempt was skipped, in words (e.g. ``lacks vision``); empty otherwise."""

    def finish(self, outcome: Outcome, now: float, reason: Reason | None = None) -> None:
        """Close the record (once; later calls are ignored)."""
        if self.outcome is Outcome.RUNNING:
            self.outcome, self.reason, self.ended = outcome, reason, now

    @property
    def latency(self) -> float:
        """Seconds from start to end (or to now while running)."""
        end = self.ended if self.ended is not None else time.monotonic()
        return max(end - self.started, 0.0)


@dataclass(frozen=True)
class Settlement:
    """A call's attempts that reached a provider, with what each consumed, and the totals."""

    sent: tuple[tuple[AttemptRecord, Usage], ...] = ()
    used: Usage = field(default_factory=Usage)
    cost: float = 0.0


@dataclass(slots=True)
class Trail:
    """The attempts of one call, and the time spent waiting on upstreams and on purpose."""

    started: float
    attempts: list[AttemptRecord] = field(default_factory=list)
    upstream_wait: float = 0.0
    """Seconds spent awaiting provider I/O (request, first token, every next event)."""
    deliberate_wait: float = 0.0
    """Seconds spent in retry backoff and target queues: policy, not overhead."""
    queue_wait: float = 0.0
    """The part of `deliberate_wait` spent waiting for target slots (queues)."""
    settlement: Settlement | None = None
    """What the attempts consumed and cost, once the accounting layer settled the call."""
    picks: dict[Target, str] | None = None
    """Why routing put each pool deployment where it stands (None: no pool); the first
    attempt at it carries the note (`AttemptRecord.pick`)."""
    priority: str = ""
    """The call's priority tier (``high``), once the engine took it up; ``""`` before."""
    notes: list[str] | None = None
    """What the call's processor steps decided and took (None: no steps), e.g.
    ``redact: pseudonymize email=1 (0.120 ms)``."""
    template: tuple[str, int] | None = None
    """The prompt template and version the call rendered (None: none), for the ledger."""

    def add(self, record: AttemptRecord) -> AttemptRecord:
        """Append and return a record."""
        if self.picks and not record.pick:
            record.pick = self.picks.pop(record.target, "")
        self.attempts.append(record)
        return record

    def overhead(self, now: float) -> float:
        """Seconds llmesh itself added: wall time minus upstream and deliberate waits."""
        return max(now - self.started - self.upstream_wait - self.deliberate_wait, 0.0)

    def close_running(self, outcome: Outcome, now: float) -> None:
        """Mark attempts still running (e.g. when the caller went away)."""
        for a in self.attempts:
            a.finish(outcome, now)


def attempt_json(
    a: AttemptRecord, usage: Usage | None = None, *, brief: bool = False
) -> dict[str, Any]:
    """One attempt as a JSON-ready dict: the one serializer of the attempt trail.

    The ledger stores every attempt with its `usage` (what it was billed: reported or
    estimated); the ``llmesh-attempts`` trailer and header pass no usage and ask for the
    `brief` form, which leaves out ``hedged`` and ``retry`` when they are false.
    ``reason``, ``ttft_ms`` and ``pick`` (a pool's choice) appear only when there is one,
    and ``detail`` only when set.
    """
    out: dict[str, Any] = {
        "target": a.target.name,
        "outcome": a.outcome._value_,  # not `.value`: a Python-level property
        "latency_ms": round(a.latency * 1000, 3),
    }
    if a.hedged or not brief:
        out["hedged"] = a.hedged
    if a.retry or not brief:
        out["retry"] = a.retry
    if a.reason is not None:
        out["reason"] = a.reason._value_
    if a.ttft is not None:
        out["ttft_ms"] = round(a.ttft * 1000, 3)
    if a.pick:
        out["pick"] = a.pick
    if a.detail:
        out["detail"] = a.detail
    if usage is not None:
        out["usage"] = usage.to_json()
    return out
