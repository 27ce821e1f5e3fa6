"""The workloads of the suite, each run on the direct path and through llmesh, alternating.

Every workload runs for several rounds; each round runs every path once, the order flipping
from round to round so drift of a shared machine falls on both. A figure is the median over
rounds; an added figure (llmesh minus direct) and a ratio (llmesh over direct) are taken per
round, then the median of those.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc

from bench.clients import ChatPath, GrpcPath, HttpPath, prompt_of
from bench.load import LegResult, run_leg
from bench.mesh import PROVIDER
from bench.settings import BenchSettings
from bench.stats import difference, median, percentile, ratio
from bench.upstream import FAST_MODEL, PACED_MODEL

DIRECT, GRPC, GATEWAY, BARE, FLOOR = "direct", "grpc", "gateway", "bare", "floor"
BARE_GATEWAY = "bare_gateway"
DIRECT_HTTP = "direct_http"
"""The orchestrator's own /v1 (the direct HTTP path: the gateway's routes, no gRPC hop)."""
Log = Callable[[str], None]


@dataclass(frozen=True)
class PathFactory:
    """Builds the paths of a workload: direct to the upstream, or through llmesh."""

    session: aiohttp.ClientSession
    channel: grpc.aio.Channel
    upstream_url: str
    gateway_url: str
    timeout: float
    bare_channel: grpc.aio.Channel | None = None
    """A channel to `bench.bare_relay`, the reference relay, when it runs."""
    floor_channel: grpc.aio.Channel | None = None
    """A channel to `bench.grpc_floor` (grpc.aio pacing its own reply), when it runs."""
    bare_gateway_url: str | None = None
    """`bench.bare_gateway` (uvicorn + grpc.aio, in front of the orchestrator), when it runs."""
    direct_http_url: str | None = None
    """The orchestrator's direct HTTP path, when it serves one."""

    def direct(self, model: str, words: int) -> ChatPath:
        """Straight to the upstream's OpenAI API."""
        return HttpPath(
            DIRECT, self.session, self.upstream_url, model, prompt_of(words), self.timeout
        )

    def grpc(self, model: str, words: int) -> ChatPath:
        """Through the orchestrator's gRPC API."""
        return GrpcPath(GRPC, self.channel, f"{PROVIDER}/{model}", prompt_of(words), self.timeout)

    def bare(self, model: str, words: int) -> ChatPath | None:
        """Through the bare reference relay (`bench.bare_relay`), when it runs."""
        if self.bare_channel is None:
            return None
        return GrpcPath(
            BARE, self.bare_channel, f"{PROVIDER}/{model}", prompt_of(words), self.timeout
        )

    def floor(self, words: int) -> ChatPath | None:
        """Straight to `bench.grpc_floor`, which paces its own reply, when it runs."""
        if self.floor_channel is None:
            return None
        return GrpcPath(FLOOR, self.floor_channel, "floor", prompt_of(words), self.timeout)

    def bare_gateway(self, model: str, words: int) -> ChatPath | None:
        """Through `bench.bare_gateway` and the orchestrator behind it, when it runs."""
        if self.bare_gateway_url is None:
            return None
        return HttpPath(
            BARE_GATEWAY,
            self.session,
            f"{self.bare_gateway_url}/v1",
            f"{PROVIDER}/{model}",
            prompt_of(words),
            self.timeout,
        )

    def direct_http(self, model: str, words: int) -> list[ChatPath]:
        """Through the orchestrator's own /v1 (the direct HTTP path), when it serves one:
        a list of one path, or empty, to splice into a workload's paths."""
        if self.direct_http_url is None:
            return []
        url = f"{self.direct_http_url}/v1"
        prompt = prompt_of(words)
        return [
            HttpPath(DIRECT_HTTP, self.session, url, f"{PROVIDER}/{model}", prompt, self.timeout)
        ]

    def gateway(self, model: str, words: int) -> ChatPath:
        """Through the gateway's OpenAI-compatible API (and the orchestrator behind it)."""
        return HttpPath(
            GATEWAY,
            self.session,
            f"{self.gateway_url}/v1",
            f"{PROVIDER}/{model}",
            prompt_of(words),
            self.timeout,
        )


@dataclass(frozen=True)
class Leg:
    """How one path is loaded in one round."""

    stream: bool
    concurrency: int
    seconds: float
    stagger: float = 0.0
    grace: float = 2.0


@dataclass
class Comparison:
    """One figure on the direct path and through llmesh, as medians over rounds."""

    direct: float | None = None
    llmesh: float | None = None
    added: float | None = None
    ratio: float | None = None
    rounds: list[dict[str, float | None]] = field(default_factory=list)


Extract = Callable[[LegResult], float | None]


def p50(values: Callable[[LegResult], list[float]]) -> Extract:
    """The median of a leg's samples."""
    return lambda leg: percentile(values(leg), 50)


def p99(values: Callable[[LegResult], list[float]]) -> Extract:
    """The 99th percentile of a leg's samples."""
    return lambda leg: percentile(values(leg), 99)


def compare(
    legs: Mapping[str, Sequence[LegResult]], other: str, extract: Extract, *, base: str = DIRECT
) -> Comparison:
    """`extract` on the `base` legs (the direct path by default) and on `other`'s, round by
    round; the result's `direct` is then the base's figure."""
    out = Comparison()
    for d, o in zip(legs[base], legs[other], strict=True):
        a, b = extract(d), extract(o)
        out.rounds.append(
            {"direct": a, "llmesh": b, "added": difference(b, a), "ratio": ratio(b, a)}
        )
    out.direct = median([r["direct"] for r in out.rounds])
    out.llmesh = median([r["llmesh"] for r in out.rounds])
    out.added = median([r["added"] for r in out.rounds])
    out.ratio = median([r["ratio"] for r in out.rounds])
    return out


async def alternate(
    paths: Sequence[ChatPath],
    leg: Leg,
    rounds: int,
    *,
    warmup: float,
    cpu_groups: Mapping[str, Sequence[int]],
    first: int = 0,
) -> dict[str, list[LegResult]]:
    """Warm every path, then run `rounds` rounds, flipping the order each round."""
    if warmup > 0:
        for path in paths:
            await run_leg(
                path, stream=leg.stream, concurrency=leg.concurrency, seconds=warmup, grace=0.5
            )
    out: dict[str, list[LegResult]] = {p.name: [] for p in paths}
    for r in range(rounds):
        order = paths if (r + first) % 2 == 0 else list(reversed(paths))
        for path in order:
            out[path.name].append(
                await run_leg(
                    path,
                    stream=leg.stream,
                    concurrency=leg.concurrency,
                    seconds=leg.seconds,
                    stagger=leg.stagger,
                    grace=leg.grace,
                    cpu_groups=cpu_groups,
                )
            )
    return out


def _legs_json(legs: Mapping[str, Sequence[LegResult]]) -> dict[str, list[dict[str, Any]]]:
    return {name: [leg.summary() for leg in runs] for name, runs in legs.items()}


def _latency(leg: LegResult) -> list[float]:
    return leg.latencies_ms


def _ttft(leg: LegResult) -> list[float]:
    return leg.ttfts_ms


def _gaps(leg: LegResult) -> list[float]:
    return leg.gaps_ms


def _rps(leg: LegResult) -> float | None:
    return leg.rps if leg.completed else None


def _tps(leg: LegResult) -> float | None:
    return leg.tokens_per_s if leg.tokens else None


@dataclass
class SuiteResult:
    """Every comparison by metric key, and the raw legs by workload."""

    comparisons: dict[str, Comparison] = field(default_factory=dict)
    workloads: dict[str, Any] = field(default_factory=dict)
    step_up: list[dict[str, Any]] = field(default_factory=list)
    max_paced_concurrency: int = 0
    bare_level: int = 0
    """The paced level the bare relay was measured at: the first llmesh did not hold, or
    the highest tried when it held them all."""


def _paced_leg(s: BenchSettings, concurrency: int) -> Leg:
    cycle = (s.paced_ttft_ms + s.paced_tokens * s.paced_itl_ms) / 1000
    return Leg(True, concurrency, s.paced_leg_seconds, stagger=cycle, grace=0.0)


def _holds(c: Comparison, itl: Comparison, s: BenchSettings) -> bool:
    return (
        c.ratio is not None
        and c.ratio >= s.step_min_ratio
        and itl.added is not None
        and itl.added <= s.step_max_added_itl_p99_ms
    )


async def _bare_at(
    level: int,
    f: PathFactory,
    s: BenchSettings,
    leg: Leg,
    cpu_groups: Mapping[str, Sequence[int]],
    out: SuiteResult,
    log: Log,
) -> None:
    """The references at `level` paced streams against direct: the bare relay, and grpc.aio
    pacing its own reply (no upstream, no relay), when they run."""
    bare = f.bare(PACED_MODEL, s.paced_tokens)
    if bare is None:
        return
    floor = f.floor(s.paced_tokens)
    log(f"step-up: {level} paced streams through the bare relay and grpc.aio alone (references)")
    paths = [f.direct(PACED_MODEL, s.paced_tokens), bare, *([floor] if floor else [])]
    legs = await alternate(paths, leg, 1, warmup=0, cpu_groups=cpu_groups)
    out.workloads[f"paced_c{level}_reference"] = _legs_json(legs)
    out.comparisons["paced_bare_tokens_per_s"] = compare(legs, BARE, _tps)
    out.comparisons["paced_bare_itl_p99_ms"] = compare(legs, BARE, p99(_gaps))
    if floor is not None:
        out.comparisons["paced_floor_tokens_per_s"] = compare(legs, FLOOR, _tps)
    out.bare_level = level


async def run_suite(
    f: PathFactory,
    s: BenchSettings,
    cpu_groups: Mapping[str, Sequence[int]],
    log: Log,
    clock: Callable[[], float],
) -> SuiteResult:
    """Run every workload; `clock` (monotonic seconds) bounds the step-up."""
    out = SuiteResult()
    c_hi = s.high_concurrency
    fast = Leg(False, 1, s.leg_seconds)

    async def workload(
        key: str, paths: Sequence[ChatPath], leg: Leg, rounds: int
    ) -> dict[str, list[LegResult]]:
        log(f"workload {key}: {', '.join(p.name for p in paths)} x {rounds} rounds")
        legs = await alternate(paths, leg, rounds, warmup=s.warmup_seconds, cpu_groups=cpu_groups)
        out.workloads[key] = _legs_json(legs)
        return legs

    words = s.nonstream_prompt_tokens
    bare = f.bare(FAST_MODEL, words)
    bare_gateway = f.bare_gateway(FAST_MODEL, words)
    legs = await workload(
        "nonstream_c1",
        [
            f.direct(FAST_MODEL, words),
            f.grpc(FAST_MODEL, words),
            f.gateway(FAST_MODEL, words),
            *([bare] if bare is not None else []),
            *([bare_gateway] if bare_gateway is not None else []),
            *f.direct_http(FAST_MODEL, words),
        ],
        fast,
        s.rounds,
    )
    direct_http = bool(f.direct_http_url)
    cmp = out.comparisons
    cmp["nonstream_c1_grpc_p50_ms"] = compare(legs, GRPC, p50(_latency))
    cmp["nonstream_c1_grpc_p99_ms"] = compare(legs, GRPC, p99(_latency))
    cmp["nonstream_c1_gateway_p50_ms"] = compare(legs, GATEWAY, p50(_latency))
    cmp["nonstream_c1_gateway_p99_ms"] = compare(legs, GATEWAY, p99(_latency))
    if bare is not None:
        cmp["nonstream_c1_bare_p50_ms"] = compare(legs, BARE, p50(_latency))
    if bare_gateway is not None:
        cmp["nonstream_c1_bare_gateway_p50_ms"] = compare(legs, BARE_GATEWAY, p50(_latency))
    if direct_http:
        cmp["nonstream_c1_direct_http_p50_ms"] = compare(legs, DIRECT_HTTP, p50(_latency))

    legs = await workload(
        f"nonstream_c{c_hi}",
        [f.direct(FAST_MODEL, words), f.grpc(FAST_MODEL, words), *f.direct_http(FAST_MODEL, words)],
        Leg(False, c_hi, s.leg_seconds),
        s.rounds,
    )
    cmp["nonstream_hi_rps"] = compare(legs, GRPC, _rps)
    if direct_http:
        cmp["nonstream_hi_direct_http_rps"] = compare(legs, DIRECT_HTTP, _rps)

    words = s.prompt_tokens
    for c, name in ((1, "c1"), (c_hi, "hi")):
        extra = f.direct_http(FAST_MODEL, words) if name == "hi" else []
        legs = await workload(
            f"stream_c{c}",
            [f.direct(FAST_MODEL, words), f.grpc(FAST_MODEL, words), *extra],
            Leg(True, c, s.leg_seconds),
            s.rounds,
        )
        cmp[f"stream_{name}_ttft_ms"] = compare(legs, GRPC, p50(_ttft))
        cmp[f"stream_{name}_tokens_per_s"] = compare(legs, GRPC, _tps)
        if extra:
            cmp["stream_hi_direct_http_tokens_per_s"] = compare(legs, DIRECT_HTTP, _tps)

    words = s.paced_tokens
    paced = [f.direct(PACED_MODEL, words), f.grpc(PACED_MODEL, words)]
    legs = await workload("paced_hi", paced, _paced_leg(s, c_hi), s.paced_rounds)
    tps = compare(legs, GRPC, _tps)
    itl = compare(legs, GRPC, p99(_gaps))
    cmp["paced_hi_tokens_per_s"], cmp["paced_hi_itl_p99_ms"] = tps, itl
    best = (c_hi, tps, itl) if _holds(tps, itl, s) else None

    started = clock()
    for i, level in enumerate(lvl for lvl in s.step_levels if lvl > c_hi):
        leg = _paced_leg(s, level)
        needed = 2 * (leg.stagger + leg.seconds) + 2
        if clock() - started + needed > s.step_budget_seconds:
            log(f"step-up: no time left for {level} streams")
            out.step_up.append({"concurrency": level, "skipped": "time budget"})
            break
        log(f"step-up: {level} paced streams")
        legs = await alternate(paced, leg, 1, warmup=0, cpu_groups=cpu_groups, first=i)
        tps, itl = compare(legs, GRPC, _tps), compare(legs, GRPC, p99(_gaps))
        held = _holds(tps, itl, s)
        out.workloads[f"paced_c{level}"] = _legs_json(legs)  # for the CPU table
        out.step_up.append(
            {
                "concurrency": level,
                "tokens_per_s_direct": tps.direct,
                "tokens_per_s_llmesh": tps.llmesh,
                "ratio": tps.ratio,
                "itl_p99_direct_ms": itl.direct,
                "itl_p99_llmesh_ms": itl.llmesh,
                "added_itl_p99_ms": itl.added,
                "held": held,
            }
        )
        if not held:
            break
        best = (level, tps, itl)
    tried = [e for e in out.step_up if "held" in e]
    if tried:  # where llmesh stopped holding (or the highest level tried)
        level = tried[-1]["concurrency"]
        await _bare_at(level, f, s, _paced_leg(s, level), cpu_groups, out, log)
    if best is not None:
        out.max_paced_concurrency = best[0]
        cmp["paced_max_tokens_per_s"], cmp["paced_max_itl_p99_ms"] = best[1], best[2]
    else:
        cmp["paced_max_tokens_per_s"], cmp["paced_max_itl_p99_ms"] = Comparison(), Comparison()
    return out
