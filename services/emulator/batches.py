"""Batch jobs shared by the OpenAI Batch API and Anthropic's Message Batches.

A `Job` answers its items in the background, one after the other, after the batch has
been in progress for the processing delay (`BatchTiming.delay_s`, `EmulatorSettings`
``batch_delay_s``, changeable at run time with ``POST /emulator/batches``). A batch not
finished when its completion window (`BatchTiming.expiry_s`, 24 hours by default) has
passed since its creation ends as expired: the items not answered by then are marked
expired. A cancelled batch marks the items not yet answered as cancelled. Each API renders
the job in its own shape (statuses, counts, result files).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BatchBook",
    "BatchTiming",
    "End",
    "ItemAnswer",
    "ItemResult",
    "Job",
    "Outcome",
    "Phase",
]


@dataclass(frozen=True, slots=True)
class ItemAnswer:
    """What the endpoint answered one item: its HTTP status, JSON body and request id."""

    status: int
    body: dict[str, Any]
    request_id: str

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return 200 <= self.status < 300


class Phase(enum.Enum):
    """Where a job is in its life."""

    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    ENDED = "ended"


class End(enum.Enum):
    """How a job ended."""

    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Outcome(enum.Enum):
    """What became of one item."""

    ANSWERED = "answered"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item's outcome, with the endpoint's answer when it was answered."""

    custom_id: str
    outcome: Outcome
    answer: ItemAnswer | None = None


class BatchTiming:
    """The processing delay and completion window in force; a change wakes waiting jobs."""

    def __init__(self, delay_s: float, expiry_s: float) -> None:
        self.delay_s = delay_s
        """Seconds a batch stays in progress before its items are answered."""
        self.expiry_s = expiry_s
        """Seconds after its creation a batch expires (the completion window)."""
        self._changed = asyncio.Event()

    def set(self, delay_s: float | None = None, expiry_s: float | None = None) -> None:
        """Change the delay and/or the window; jobs waiting re-check at once."""
        if delay_s is not None:
            self.delay_s = delay_s
        if expiry_s is not None:
            self.expiry_s = expiry_s
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, timeout: float) -> None:
        """Wait for a change, at most `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.0)):
                await self._changed.wait()

    def snapshot(self) -> dict[str, float]:
        """The timing as JSON-ready data."""
        return {"delay_s": self.delay_s, "expiry_s": self.expiry_s}


@dataclass(slots=True)
class Job:
    """One batch: its items, their results so far and its timeline (Unix seconds)."""

    id: str
    custom_ids: list[str]
    answer: Callable[[int], ItemAnswer]
    """Answers item `i` (see `llmesh.services.emulator.batch_items`)."""
    timing: BatchTiming
    created_at: float = field(default_factory=time.time)
    expires_at: float = 0.0
    validate: Callable[[], list[dict[str, Any]]] | None = None
    """OpenAI only: checks the input before processing; errors fail the batch."""
    finish: Callable[[Job], None] | None = None
    """Called while finalizing (OpenAI writes its output and error files)."""
    phase: Phase = Phase.IN_PROGRESS
    end: End | None = None
    results: list[ItemResult] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    in_progress_at: float | None = None
    finalizing_at: float | None = None
    ended_at: float | None = None
    cancel_requested_at: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    """Per-API fields (input file, endpoint, metadata, result file ids...)."""
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.expires_at = self.created_at + self.timing.expiry_s
        if self.validate is not None:
            self.phase = Phase.VALIDATING

    @property
    def total(self) -> int:
        """How many items the batch has."""
        return len(self.custom_ids)

    def count(self, outcome: Outcome, ok: bool | None = None) -> int:
        """Results with `outcome` (answered: only the successful or failed ones when `ok`
        is given)."""
        return sum(
            1
            for r in self.results
            if r.outcome is outcome and (ok is None or (r.answer is not None and r.answer.ok) == ok)
        )

    def cancel(self) -> None:
        """Ask the job to stop: items not yet answered will be cancelled."""
        if self.cancel_requested_at is None and self.phase is not Phase.ENDED:
            self.cancel_requested_at = time.time()
            self._wake.set()

    async def run(self) -> None:
        """Validate (OpenAI), wait the processing delay, answer the items, finalize."""
        await asyncio.sleep(0)  # the creation's answer shows the first phase
        if self.validate is not None:
            self.errors = self.validate()
            if self.errors:
                self._close(End.FAILED)
                return
        self.phase = Phase.IN_PROGRESS
        self.in_progress_at = time.time()
        await self._delay()
        for i, custom_id in enumerate(self.custom_ids):
            if self.cancel_requested_at is not None:
                self.results.append(ItemResult(custom_id, Outcome.CANCELLED))
            elif time.time() >= self.expires_at:
                self.results.append(ItemResult(custom_id, Outcome.EXPIRED))
            else:
                self.results.append(ItemResult(custom_id, Outcome.ANSWERED, self.answer(i)))
                await asyncio.sleep(0)  # status requests are answered between items
        self.phase = Phase.FINALIZING
        self.finalizing_at = time.time()
        if self.cancel_requested_at is not None:
            end = End.CANCELLED
        elif any(r.outcome is Outcome.EXPIRED for r in self.results):
            end = End.EXPIRED
        else:
            end = End.COMPLETED
        if self.finish is not None:
            self.finish(self)
        self._close(end)

    async def _delay(self) -> None:
        """Wait until the delay has passed, the batch expired or it was cancelled."""
        assert self.in_progress_at is not None
        while self.cancel_requested_at is None:
            now = time.time()
            ready = min(self.in_progress_at + self.timing.delay_s, self.expires_at)
            if now >= ready:
                return
            self._wake = asyncio.Event()
            waits = [
                asyncio.ensure_future(self._wake.wait()),
                asyncio.ensure_future(self.timing.wait_change(ready - now)),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
                await asyncio.gather(*waits, return_exceptions=True)

    def _close(self, end: End) -> None:
        self.phase = Phase.ENDED
        self.end = end
        self.ended_at = time.time()


class BatchBook:
    """One emulator's batches (both APIs) and the OpenAI files, with the timing in force."""

    def __init__(self, delay_s: float, expiry_s: float) -> None:
        self._configured = (delay_s, expiry_s)
        self.timing = BatchTiming(delay_s, expiry_s)
        self.jobs: dict[str, Job] = {}
        """Every job by id, oldest first."""
        self.files: dict[str, dict[str, Any]] = {}
        """OpenAI files by id: their ``FileObject`` fields plus ``content`` (bytes)."""
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, job: Job) -> None:
        """Record `job` and run it in the background."""
        self.jobs[job.id] = job
        task = asyncio.get_running_loop().create_task(job.run(), name=f"batch {job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop every running job (the server is stopping or being reset)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self) -> None:
        """Stop and forget every job and file; restore the configured timing."""
        await self.close()
        self.jobs.clear()
        self.files.clear()
        self.timing.set(*self._configured)
