"""A closed-loop load generator: N workers call one path back to back for a fixed window.

Only what happens inside the measured window counts: requests that start and finish in it
(latency), replies and tokens that arrive in it (throughput), first tokens of streams that
started in it, and gaps between tokens. A streamed delta carrying k tokens counts as one gap
(since the previous delta) followed by k - 1 gaps of zero, so coalescing shows as it is felt.
Workers may start staggered over `stagger` seconds so paced streams do not move in lockstep;
the window opens after the stagger. At the window's end in-flight calls get `grace` seconds
to finish, then are cancelled: no leg outlives its bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from time import perf_counter

from bench.clients import ChatPath
from bench.stats import percentile
from bench.system import cpu_seconds


@dataclass
class LegResult:
    """What one path did during one measured window."""

    path: str
    concurrency: int
    seconds: float
    completed: int = 0
    errors: int = 0
    first_error: str = ""
    tokens: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    ttfts_ms: list[float] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    """Share of one core used during the window by each group of processes."""

    @property
    def rps(self) -> float:
        """Replies completed per second."""
        return self.completed / self.seconds

    @property
    def tokens_per_s(self) -> float:
        """Streamed tokens received per second."""
        return self.tokens / self.seconds

    def summary(self) -> dict[str, float | int | str | None]:
        """The leg's figures (percentiles in milliseconds), for the JSON report."""
        return {
            "path": self.path,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "completed": self.completed,
            "errors": self.errors,
            "first_error": self.first_error,
            "rps": self.rps,
            "tokens_per_s": self.tokens_per_s,
            "latency_p50_ms": percentile(self.latencies_ms, 50),
            "latency_p99_ms": percentile(self.latencies_ms, 99),
            "ttft_p50_ms": percentile(self.ttfts_ms, 50),
            "ttft_p99_ms": percentile(self.ttfts_ms, 99),
            "itl_p50_ms": percentile(self.gaps_ms, 50),
            "itl_p99_ms": percentile(self.gaps_ms, 99),
            **{f"cpu_{k}": round(v, 3) for k, v in self.cpu.items()},
        }


class _Window:
    """Records calls and deltas against the measured window."""

    def __init__(self, result: LegResult, start: float, end: float) -> None:
        self.result = result
        self.start = start
        self.end = end

    def unary(self, began: float, ended: float) -> None:
        if self.start <= ended <= self.end:
            self.result.completed += 1
            if began >= self.start:
                self.result.latencies_ms.append((ended - began) * 1000)

    def stream(self, began: float) -> _Trace:
        return _Trace(self, began)


class _Trace:
    """One streamed call's first and last token, fed by the client's `on_delta`."""

    __slots__ = ("began", "last", "window")

    def __init__(self, window: _Window, began: float) -> None:
        self.window = window
        self.began = began
        self.last = 0.0

    def __call__(self, now: float, tokens: int) -> None:
        w = self.window
        inside = w.start <= now <= w.end
        if inside:
            w.result.tokens += tokens
        if not self.last:
            if inside and self.began >= w.start:
                w.result.ttfts_ms.append((now - self.began) * 1000)
            if inside and tokens > 1:
                w.result.gaps_ms.extend([0.0] * (tokens - 1))
        elif inside:
            w.result.gaps_ms.append((now - self.last) * 1000)
            if tokens > 1:
                w.result.gaps_ms.extend([0.0] * (tokens - 1))
        self.last = now


async def run_leg(
    path: ChatPath,
    *,
    stream: bool,
    concurrency: int,
    seconds: float,
    stagger: float = 0.0,
    grace: float = 2.0,
    cpu_groups: Mapping[str, Sequence[int]] | None = None,
) -> LegResult:
    """Load `path` with `concurrency` workers and measure `seconds` after the stagger.

    `cpu_groups` names groups of process ids (this process is always ``load``) whose CPU
    use over the window is reported as a share of one core.
    """
    result = LegResult(path.name, concurrency, seconds)
    t0 = perf_counter()
    window = _Window(result, t0 + stagger, t0 + stagger + seconds)
    groups = {"load": [os.getpid()], **(cpu_groups or {})}

    async def worker(index: int) -> None:
        if stagger:
            await asyncio.sleep(stagger * index / concurrency)
        while (began := perf_counter()) < window.end:
            try:
                if stream:
                    trace = window.stream(began)
                    await path.stream(trace)
                    if window.start <= perf_counter() <= window.end:
                        result.completed += 1
                else:
                    await path.unary()
                    window.unary(began, perf_counter())
            except Exception as exc:  # counted and reported, never fatal to the run
                if perf_counter() <= window.end:
                    result.errors += 1
                    result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.01)

    tasks = [asyncio.ensure_future(worker(i)) for i in range(concurrency)]
    try:
        await asyncio.sleep(max(window.start - perf_counter(), 0))
        before = {name: sum(cpu_seconds(p) for p in pids) for name, pids in groups.items()}
        wall = perf_counter()
        await asyncio.sleep(max(window.end - perf_counter(), 0))
        wall = perf_counter() - wall
        result.cpu = {
            name: (sum(cpu_seconds(p) for p in pids) - before[name]) / wall
            for name, pids in groups.items()
        }
        if grace > 0:
            await asyncio.wait(tasks, timeout=grace)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return result
