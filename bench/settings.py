"""How long and how hard each part of the suite runs: the full run, the smoke run, the soak."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchSettings:
    """Durations, rounds and concurrency levels of one suite run."""

    rounds: int = 5
    """Rounds per workload; each round runs every path once, in alternating order."""
    leg_seconds: float = 3.0
    """Measured seconds of one path in one round, for the fast (unpaced) workloads."""
    warmup_seconds: float = 0.5
    """Unmeasured load on each path before a workload's first round."""
    ceiling_seconds: float = 2.0
    """Seconds per measurement of an upstream's own ceiling."""
    prompt_tokens: int = 100
    """Words in the prompt, hence tokens in every streamed reply (the upstream echoes)."""
    nonstream_prompt_tokens: int = 10
    """Words in the prompt of the non-streaming workloads."""
    high_concurrency: int = 32
    """The concurrency of the throughput workloads."""
    paced_ttft_ms: float = 200.0
    """The paced upstream's time to first token."""
    paced_itl_ms: float = 20.0
    """The paced upstream's time between tokens."""
    paced_tokens: int = 100
    """Tokens in each paced reply."""
    paced_rounds: int = 3
    """Rounds of the paced workload at the high concurrency."""
    paced_leg_seconds: float = 6.0
    """Measured seconds of one paced leg (after its streams have been staggered in)."""
    step_levels: tuple[int, ...] = (64, 128, 192, 256, 288, 320, 384, 512)
    """Concurrency levels tried, in order, to find the most paced streams llmesh holds."""
    step_budget_seconds: float = 120.0
    """Total time allowed for the step-up; levels not reached in time are skipped."""
    step_max_added_itl_p99_ms: float = 20.0
    """A level fails when the added inter-token p99 passes this."""
    step_min_ratio: float = 0.99
    """A level fails when delivered tokens/s through llmesh over direct drops below this."""
    startup_runs: int = 3
    """Cold starts of the orchestrator timed to SERVING (the median is reported)."""
    request_timeout: float = 30.0
    """Deadline of every single request, so no run can hang."""
    total_budget_seconds: float = 720.0
    """Hard limit for the whole run; the runner stops with an error past it."""

    @classmethod
    def smoke(cls) -> BenchSettings:
        """A run of a few seconds per workload that exercises every code path."""
        return cls(
            rounds=1,
            leg_seconds=0.3,
            warmup_seconds=0.1,
            ceiling_seconds=0.3,
            prompt_tokens=20,
            nonstream_prompt_tokens=5,
            high_concurrency=8,
            paced_ttft_ms=20.0,
            paced_itl_ms=5.0,
            paced_tokens=10,
            paced_rounds=1,
            paced_leg_seconds=0.4,
            step_levels=(16, 32),
            step_budget_seconds=10.0,
            startup_runs=1,
            request_timeout=10.0,
            total_budget_seconds=90.0,
        )


@dataclass(frozen=True)
class SoakSettings:
    """The steady load of ``make soak`` and how often memory is sampled."""

    seconds: float = 600.0
    """Length of the steady load (env ``BENCH_SOAK_SECONDS``)."""
    interval: float = 60.0
    """Seconds between RSS samples (env ``BENCH_SOAK_INTERVAL``)."""
    warmup: float = 30.0
    """Seconds of load before the baseline sample that growth is measured from."""
    concurrency: int = 32
    """Concurrent callers (env ``BENCH_SOAK_CONCURRENCY``); a quarter use the gateway."""
    prompt_tokens: int = 100
    """Words per prompt, so tokens per streamed reply."""
    max_growth_pct: float = 5.0
    """The target: RSS growth from the baseline to the end, in percent."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SoakSettings:
        """Defaults, overridden by ``BENCH_SOAK_SECONDS`` / ``_INTERVAL`` / ``_CONCURRENCY``."""
        env = os.environ if env is None else env
        seconds = float(env.get("BENCH_SOAK_SECONDS", cls.seconds))
        interval = float(env.get("BENCH_SOAK_INTERVAL", min(cls.interval, max(seconds / 10, 1))))
        return cls(
            seconds=seconds,
            interval=interval,
            warmup=min(cls.warmup, seconds / 10),
            concurrency=int(env.get("BENCH_SOAK_CONCURRENCY", cls.concurrency)),
        )
