"""``python -m bench --workers``: the orchestrator on every core against one core.

Each round runs the same non-stream c=32 gRPC load against one orchestrator worker pinned
to the first core, then against one worker per core (``llmesh serve orchestrator --worker
I/N``, worker I pinned to core I, sharing the port with ``SO_REUSEPORT``), the order
flipping each round; the figure is the median of the per-round throughput ratios (target:
at least 1.8 on 2 cores). The load spreads over several connections, since the kernel hands
each connection, not each call, to a worker, and deals its calls as the gateway does
(`llmesh.gateway.channel_pool`: to the connection with the fewest in flight, since the
kernel's spread of connections is uneven). The upstream (the fast one) and the load
generator run unpinned beside the workers: on a machine with no spare cores they take CPU
from them, so the ratio there is indicative only.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import grpc

from bench.clients import GrpcPath, prompt_of
from bench.cpu_quota import CpuQuota
from bench.load import run_leg
from bench.mesh import SERVICE_NAME, write_config
from bench.ports import free_port
from bench.procs import clean_env, llmesh_argv
from bench.report import write_json
from bench.settings import BenchSettings
from bench.system import Pinning, machine_info
from bench.upstream import FAST_MODEL, start_upstream
from llmesh.gateway.channel_pool import LOCAL_SUBCHANNELS, ChannelPool
from llmesh.services.common.supervisor import WorkerGroup
from llmesh.v1 import orchestrator_pb2_grpc

CONNECTIONS = 8
"""gRPC connections the load spreads its calls over (each lands on one worker)."""


async def _leg(
    address: str,
    cores: list[int],
    directory: Path,
    env: dict[str, str],
    s: BenchSettings,
    others: dict[str, list[int]],
    quota: float | None = None,
) -> dict[str, Any]:
    """Start len(`cores`) workers, load them, stop them: worker I pinned to cores[I], or
    with a `quota` (a share of a CPU) each, unpinned. `others`: more processes whose CPU use
    is reported (the upstream)."""
    count = len(cores)

    def command(i: int) -> list[str]:
        pin = [] if quota else ["taskset", "-c", str(cores[i])]
        return [*pin, *llmesh_argv("serve", "orchestrator", "--worker", f"{i}/{count}")]

    quotas: list[CpuQuota] = []
    with (directory / f"orchestrator-{count}.log").open("ab") as log:
        group = WorkerGroup("orchestrator", count, command, output=log, env=env)
        failure = group.start()
        if failure is not None:
            group.stop(5)
            raise RuntimeError(f"{failure}; see {log.name}")
        pool = ChannelPool.open(
            CONNECTIONS, lambda _: grpc.aio.insecure_channel(address, options=[LOCAL_SUBCHANNELS])
        )
        try:
            if quota:
                for i, pid in enumerate(group.pids):
                    quotas.append(CpuQuota(f"llmesh-bench-worker{i}", quota))
                    quotas[-1].add(pid)
            prompt = prompt_of(s.nonstream_prompt_tokens)
            model = f"bench/{FAST_MODEL}"
            stub = pool.stub(orchestrator_pb2_grpc.OrchestratorServiceStub)
            path = GrpcPath(f"{count} worker(s)", None, model, prompt, s.request_timeout, stub=stub)
            c = s.high_concurrency
            await run_leg(path, stream=False, concurrency=c, seconds=s.warmup_seconds)
            groups = {"orchestrator": group.pids, **others}
            groups.update({f"worker{i}": [pid] for i, pid in enumerate(group.pids)})
            leg = await run_leg(
                path, stream=False, concurrency=c, seconds=s.leg_seconds, cpu_groups=groups
            )
        finally:
            await pool.close()
            group.stop(10)
            for q in quotas:
                q.close()
    return {"workers": count, "rps": leg.rps, "errors": leg.errors, "cpu": leg.cpu}


async def run_workers(
    rounds: int, out: Path, log: Callable[[str], None], quota: float | None = None
) -> tuple[str, Path]:
    """Throughput of one worker on one core and of one worker per core (or, with a `quota`,
    of one worker and of one per core, each held to `quota` of a CPU); the ratio per round."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("python -m bench --workers: needs at least 2 cores")
    settings = BenchSettings()
    placement_note = (
        f"each worker held to {quota:g} CPU (cgroup quota), unpinned"
        if quota
        else "workers pinned one per core"
    )
    unpinned = Pinning(None, None, f"{placement_note}; upstream and load unpinned")
    ratios: list[float] = []
    legs: list[dict[str, Any]] = []
    with TemporaryDirectory(prefix="llmesh-bench-workers-") as tmp:
        directory = Path(tmp)
        upstream = await start_upstream("fast", settings, unpinned, directory)
        try:
            address = f"127.0.0.1:{free_port()}"
            env = clean_env(
                {
                    "LLMESH_CONFIG": str(write_config(directory, upstream.base_url)),
                    "LLMESH_DATABASE_URL": f"sqlite:///{directory / 'llmesh.db'}",
                    "LLMESH_ORCHESTRATOR_ADDRESS": address,
                }
            )
            others = {"upstream": [upstream.service.pid]}
            for r in range(rounds):
                order = [[cores[0]], cores] if r % 2 == 0 else [cores, [cores[0]]]
                by_count = {}
                for placement in order:
                    leg = await _leg(address, placement, directory, env, settings, others, quota)
                    by_count[leg["workers"]] = leg
                    legs.append(leg)
                    cpu = ", ".join(f"{k} {v:.2f}" for k, v in leg["cpu"].items())
                    log(
                        f"round {r + 1}: {leg['workers']} worker(s): {leg['rps']:.0f} calls/s "
                        f"(CPU: {cpu})"
                    )
                ratios.append(by_count[len(cores)]["rps"] / max(by_count[1]["rps"], 1e-9))
        finally:
            upstream.stop()
    ratio = statistics.median(ratios)
    one = statistics.median(leg["rps"] for leg in legs if leg["workers"] == 1)
    many = statistics.median(leg["rps"] for leg in legs if leg["workers"] == len(cores))
    unit = f"{quota:g} CPU each" if quota else "one core each"
    table = (
        f"{placement_note}; upstream and load unpinned\n\n"
        f"| orchestrator, non-stream c={settings.high_concurrency} | calls/s |\n|---|---|\n"
        f"| 1 worker ({unit}) | {one:.0f} |\n| {len(cores)} workers ({unit}) | "
        f"{many:.0f} |\n| ratio (median per round; target >= 1.8 on 2 cores) | {ratio:.2f} |"
    )
    payload = {
        "machine": machine_info(),
        "service": SERVICE_NAME,
        "quota": quota,
        "ratios": ratios,
        "legs": legs,
    }
    return table, write_json(out, payload, prefix="workers-")
