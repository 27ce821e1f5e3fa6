"""The suite's runner: ``python -m bench [--smoke | --soak] [--upstream auto|fast|emulator]``.

``python -m bench --telemetry`` instead measures telemetry's cost: three meshes (telemetry
off, metrics only, metrics and tracing) side by side (`bench.telemetry`).

``python -m bench --embeddings`` instead measures the local embedding model, then embeddings
through llmesh against direct (`bench.embeddings`).

It pins itself (the load generator) to the load core, starts the upstream there, measures
the upstream's own ceiling, starts the orchestrator and gateway on the service core, runs
every workload alternating direct and llmesh, then prints the table and writes the JSON.
Everything runs under one overall time limit and every process it started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from time import perf_counter
from typing import Any

import aiohttp

from bench.clients import grpc_channel, http_session
from bench.mesh import MeshLauncher
from bench.ports import free_port
from bench.procs import ROOT, Service, clean_env, python_argv, start
from bench.report import (
    build_metrics,
    cpu_markdown,
    cpu_summary,
    markdown,
    metrics_json,
    write_json,
)
from bench.settings import BenchSettings, SoakSettings
from bench.system import Pinning, machine_info
from bench.upstream import Upstream, ceiling, start_upstream
from bench.workloads import Log, PathFactory, run_suite

RESULTS = ROOT / "bench" / "results"
EMULATOR_MIN_RPS = 2000.0
EMULATOR_MIN_TOKENS = 60000.0
"""The emulator is used only if its ceiling is at least twice the targets through llmesh."""


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _describe(kind: str, ceilings: dict[str, dict[str, Any]], reason: str) -> str:
    names = {"fast": "bench/fast_upstream.py (raw asyncio + uvloop)", "emulator": "the emulator"}
    parts = [
        f"{names[k]}: {c['rps']:,.0f} req/s, {c['tokens_per_s']:,.0f} tok/s"
        for k, c in ceilings.items()
    ]
    return f"{names[kind]} ({reason}); ceilings direct at c={_c(ceilings)}: " + "; ".join(parts)


def _c(ceilings: dict[str, dict[str, Any]]) -> int:
    return int(next(iter(ceilings.values()))["concurrency"])


async def choose_upstream(
    choice: str,
    settings: BenchSettings,
    pinning: Pinning,
    logs: Path,
    session: aiohttp.ClientSession,
) -> tuple[Upstream, dict[str, Any]]:
    """Start the upstream(s), measure each one's ceiling and keep the chosen one."""
    kinds = ["emulator", "fast"] if choice == "auto" else [choice]
    ceilings: dict[str, dict[str, Any]] = {}
    started: dict[str, Upstream] = {}
    try:
        for kind in kinds:
            _log(f"upstream {kind}: measuring its ceiling")
            started[kind] = await start_upstream(kind, settings, pinning, logs)
            ceilings[kind] = await ceiling(started[kind], session, settings)
    except BaseException:
        for up in started.values():
            up.stop()
        raise
    kind = kinds[0]
    if choice == "auto":
        emu = ceilings["emulator"]
        fast_enough = emu["rps"] >= EMULATOR_MIN_RPS and emu["tokens_per_s"] >= EMULATOR_MIN_TOKENS
        kind = "emulator" if fast_enough else "fast"
    for other in [k for k in started if k != kind]:
        started.pop(other).stop()
    if choice != "auto":
        reason = "chosen with --upstream"
    elif kind == "emulator":
        reason = "its ceiling is at least twice the targets"
    else:
        reason = "the emulator's ceiling is below twice the targets, so it would be the bottleneck"
    meta = {
        "kind": kind,
        "description": _describe(kind, ceilings, reason),
        "ceilings": ceilings,
    }
    return started[kind], meta


@dataclass
class Reference:
    """A reference server (`bench.bare_relay` or `bench.grpc_floor`) and its port."""

    service: Service
    port: int


async def _start_reference(name: str, args: list[str], pinning: Pinning, logs: Path) -> Reference:
    port = free_port()
    service = await start(
        name,
        python_argv(f"bench.{name.replace('-', '_')}", "--port", str(port), *args),
        port=port,
        pin=pinning.prefix(pinning.service_core),
        logs=logs,
        env=clean_env({}),
    )
    return Reference(service, port)


async def start_bare_relay(upstream: Upstream, pinning: Pinning, logs: Path) -> Reference:
    """Start the bare reference relay on llmesh's core, in front of the same upstream."""
    return await _start_reference("bare-relay", ["--upstream", upstream.base_url], pinning, logs)


async def start_bare_gateway(orchestrator: str, pinning: Pinning, logs: Path) -> Reference:
    """Start the bare gateway on llmesh's core, in front of llmesh's orchestrator."""
    return await _start_reference("bare-gateway", ["--orchestrator", orchestrator], pinning, logs)


async def start_grpc_floor(settings: BenchSettings, pinning: Pinning, logs: Path) -> Reference:
    """Start grpc.aio pacing its own reply (as the paced upstream does) on llmesh's core."""
    paced = f"{settings.paced_ttft_ms}:{settings.paced_itl_ms}"
    return await _start_reference("grpc-floor", ["--paced", paced], pinning, logs)


async def run_bench(
    settings: BenchSettings, pinning: Pinning, choice: str, mode: str, out: Path, log: Log
) -> tuple[str, Path]:
    """The whole suite; returns the markdown table and the JSON path."""
    began = perf_counter()
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="llmesh-bench-") as tmp:
        session = http_session(0)
        upstream: Upstream | None = None
        mesh = None
        try:
            upstream, upstream_meta = await choose_upstream(
                choice, settings, pinning, Path(tmp), session
            )
            log(f"starting llmesh ({settings.startup_runs} timed cold starts)")
            launcher = MeshLauncher(Path(tmp), upstream.base_url, pinning, direct_http=True)
            mesh = await launcher.start(settings.startup_runs)
            references: list[Reference] = []
            try:
                bare = await start_bare_relay(upstream, pinning, Path(tmp))
                references.append(bare)
                floor = await start_grpc_floor(settings, pinning, Path(tmp))
                references.append(floor)
                bare_gw = await start_bare_gateway(mesh.orchestrator_address, pinning, Path(tmp))
                references.append(bare_gw)
            except BaseException:
                for ref in references:
                    ref.service.stop()
                raise
            await asyncio.sleep(0.5)
            rss_start = mesh.rss()
            channel = grpc_channel(mesh.orchestrator_address)
            bare_channel = grpc_channel(f"127.0.0.1:{bare.port}")
            floor_channel = grpc_channel(f"127.0.0.1:{floor.port}")
            try:
                factory = PathFactory(
                    session,
                    channel,
                    upstream.base_url,
                    mesh.gateway_url,
                    settings.request_timeout,
                    bare_channel,
                    floor_channel,
                    f"http://127.0.0.1:{bare_gw.port}",
                    mesh.direct_url,
                )
                groups = {
                    "llmesh": mesh.pids,
                    "upstream": [upstream.service.pid],
                    "bare": [bare.service.pid],
                    "floor": [floor.service.pid],
                    "bare_gateway": [bare_gw.service.pid, mesh.orchestrator.pid],
                }
                suite = await run_suite(factory, settings, groups, log, perf_counter)
            finally:
                await channel.close()
                await bare_channel.close()
                await floor_channel.close()
                for ref in references:
                    ref.service.stop()
            rss_after = mesh.rss()
        finally:
            await session.close()
            if mesh is not None:
                mesh.stop()
            if upstream is not None:
                upstream.stop()
    values = {
        "paced_max_concurrency": float(suite.max_paced_concurrency) or None,
        "paced_bare_level": float(suite.bare_level) or None,
        "rss_orchestrator_start_mib": rss_start["orchestrator"],
        "rss_orchestrator_after_load_mib": rss_after["orchestrator"],
        "rss_gateway_start_mib": rss_start["gateway"],
        "rss_gateway_after_load_mib": rss_after["gateway"],
        "startup_orchestrator_s": mesh.startup_s["orchestrator"],
        "startup_gateway_s": mesh.startup_s["gateway"],
    }
    metrics = build_metrics(suite.comparisons, values, settings.high_concurrency)
    meta = {
        "mode": mode,
        "machine": machine,
        "pinning": pinning.note,
        "upstream": upstream_meta,
        "startup": mesh.startup_s,
        "settings": asdict(settings),
        "duration_s": round(perf_counter() - began, 1),
    }
    cpu = cpu_summary(suite.workloads)
    table = markdown(meta, metrics) + "\n\n" + cpu_markdown(cpu)
    payload = {
        "meta": meta,
        "metrics": metrics_json(metrics),
        "cpu": cpu,
        "step_up": suite.step_up,
        "workloads": suite.workloads,
        "table": table,
    }
    return table, write_json(out, payload)


def _positive(kind: type[int] | type[float]) -> Any:
    """An argparse type: a finite number of `kind` above zero."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"must be a finite number above 0: {text}")
        return value

    return parse


def run_settings(args: argparse.Namespace) -> BenchSettings:
    """The settings a command line asks for: the full run's or the smoke run's, with
    ``--rounds`` and ``--leg-seconds`` applied."""
    settings = BenchSettings.smoke() if args.smoke else BenchSettings()
    if args.rounds is not None:
        settings = replace(settings, rounds=args.rounds)
    if args.leg_seconds is not None:
        settings = replace(settings, leg_seconds=args.leg_seconds)
    return settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="a few seconds per workload")
    mode.add_argument(
        "--soak",
        action="store_true",
        help="steady load, RSS over time (BENCH_SOAK_SECONDS, _INTERVAL, _CONCURRENCY)",
    )
    mode.add_argument(
        "--instructions",
        action="store_true",
        help="count llmesh's instructions against the bare relay under callgrind (valgrind)",
    )
    mode.add_argument(
        "--instructions-telemetry",
        action="store_true",
        help="callgrind: instructions per gRPC and gateway call with telemetry off, metrics "
        "only, metrics + tracing",
    )
    mode.add_argument(
        "--embeddings",
        action="store_true",
        help="texts/s and memory of the local embedding model, in this process",
    )
    mode.add_argument(
        "--profile",
        action="store_true",
        help="sample the orchestrator with py-spy under streaming load and summarize",
    )
    p.add_argument(
        "--telemetry",
        action="store_true",
        help="telemetry off, metrics only, metrics + tracing: three meshes side by side "
        "(with --smoke: a few seconds)",
    )
    mode.add_argument(
        "--workers",
        action="store_true",
        help="orchestrator throughput (non-stream c=32) on every core against one core",
    )
    p.add_argument("--workers-rounds", type=int, default=3, help="rounds of --workers")
    p.add_argument(
        "--rounds",
        type=_positive(int),
        default=None,
        help="--telemetry: rounds of each workload (5; more rounds, a tighter median of the "
        "per-round ratios)",
    )
    p.add_argument(
        "--leg-seconds",
        type=_positive(float),
        default=None,
        help="--telemetry: measured seconds of each path in each round (3)",
    )
    p.add_argument(
        "--instructions-legs",
        default="",
        help="--instructions counts only these, comma-separated: llmesh, bare, gateway, direct",
    )
    p.add_argument(
        "--workers-quota",
        type=float,
        default=None,
        metavar="CPU",
        help="--workers with each worker held to CPU of a core (cgroup quota, e.g. 0.5), "
        "unpinned, instead of pinned one per core",
    )
    p.add_argument("--profile-seconds", type=float, default=20.0, help="how long to sample")
    p.add_argument(
        "--embeddings-seconds",
        type=float,
        default=3.0,
        help="how long each embeddings measure runs (each leg, on the remote path)",
    )
    p.add_argument(
        "--embeddings-rounds",
        type=int,
        default=3,
        help="rounds of the remote embeddings paths (direct, gRPC, gateway); 0 skips them",
    )
    p.add_argument(
        "--profile-workload",
        choices=("stream", "nonstream", "paced"),
        default="stream",
        help="the load while profiling (paced: --profile-concurrency streams, default 256)",
    )
    p.add_argument("--profile-concurrency", type=int, default=None, help="callers while profiling")
    p.add_argument(
        "--profile-native",
        action="store_true",
        help="sample C frames too (grpc core, uvloop, protobuf); pauses the process per sample",
    )
    p.add_argument(
        "--upstream",
        choices=("auto", "fast", "emulator"),
        default="auto",
        help="auto: the emulator if its ceiling is at least twice the targets, else fast",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, run, print the table."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.telemetry and (args.soak or args.instructions or args.embeddings or args.profile):
        parser.error("--telemetry runs on its own (or with --smoke)")
    if (args.rounds is not None or args.leg_seconds is not None) and not args.telemetry:
        parser.error("--rounds and --leg-seconds go with --telemetry")
    pinning = Pinning.detect()
    if not args.workers:  # --workers places its own processes, the load on every core
        pinning.pin_self()  # before the event loop and gRPC start any thread
    settings = run_settings(args)
    _log(f"placement: {pinning.note}")
    import uvloop

    async def bounded() -> tuple[str, Path]:
        if args.soak:
            from bench.soak import run_soak

            soak = SoakSettings.from_env()
            limit = soak.seconds + 120
            work = run_soak(soak, settings, pinning, args.out, _log)
        elif args.instructions:
            from bench.instructions import LEGS, run_instructions

            legs = tuple(args.instructions_legs.split(",")) if args.instructions_legs else LEGS
            limit = 1200.0 * len(legs)  # a start under valgrind takes minutes on a busy machine
            work = run_instructions(pinning, args.out, _log, legs)
        elif args.instructions_telemetry:
            from bench.instructions_telemetry import run_instructions_telemetry

            limit = 2400.0
            work = run_instructions_telemetry(pinning, args.out, _log)
        elif args.embeddings:
            from bench.embeddings import run_embeddings

            rounds = args.embeddings_rounds
            limit = args.embeddings_seconds * (3 + 12 * rounds) + 90
            work = run_embeddings(
                args.embeddings_seconds,
                args.out,
                _log,
                rounds=rounds,
                upstream=args.upstream,
                pinning=pinning,
            )
        elif args.workers:
            from bench.workers import run_workers

            limit = 60.0 + 30.0 * args.workers_rounds
            work = run_workers(args.workers_rounds, args.out, _log, args.workers_quota)
        elif args.profile:
            from bench.profile import run_profile

            limit = args.profile_seconds + 120
            work = run_profile(
                args.profile_seconds,
                args.upstream,
                pinning,
                args.out,
                _log,
                workload=args.profile_workload,
                concurrency=args.profile_concurrency,
                native=args.profile_native,
            )
        elif args.telemetry:
            from bench.telemetry import run_telemetry, time_limit

            limit = time_limit(settings)
            mode = "smoke" if args.smoke else "full"
            work = run_telemetry(settings, pinning, args.upstream, mode, args.out, _log)
        else:
            limit = settings.total_budget_seconds
            mode = "smoke" if args.smoke else "full"
            work = run_bench(settings, pinning, args.upstream, mode, args.out, _log)
        return await asyncio.wait_for(work, limit)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        table, path = runner.run(bounded())
    print(table)
    print(f"\nwritten: {path}")
