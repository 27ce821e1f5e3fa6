"""``make soak-chaos``: minutes of load through llmesh while the upstream misbehaves.

An emulator, an orchestrator and a gateway run as ``llmesh serve`` processes on a SQLite
ledger. `concurrency` callers call the route ``chaos`` (targets ``emulator/chaos-a`` then
``emulator/chaos-b``, breakers opening after 3 failures and probing again after 2 s): three
quarters stream over gRPC, a quarter call the gateway's OpenAI API (streamed and not, in
turn). Meanwhile the emulator faults `fault_rate` of the requests at random, with a fault
kind drawn anew every `fault_period` seconds from every kind it has.

Checked at the end, each a pass or a fail in the report:

- no hung stream: every call ended (a terminal event, an error status or an HTTP answer)
  within its deadline plus `hang_grace`, and no stream ended without its terminal event;
- exactly one ledger row per call: every call a caller saw reach a provider has its row,
  the rows' attempts add up to the requests the emulator received, none is left in flight;
- breakers opened and closed again (the orchestrator's ``llmesh_breaker_state`` gauge);
- RSS and open file descriptors of each service flat: < `max_growth_pct` from the first
  minute of load to the last (RSS: the means of the samples in each; descriptors, which
  swing with the calls in flight: the peaks).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import aiohttp
import grpc
import yaml

from bench.chaos_watch import BreakerWatch, ProcSample, check_ledger, growth, sample
from bench.clients import grpc_channel
from bench.ports import free_port
from bench.procs import ROOT, Service, clean_env, llmesh_argv, start
from bench.report import write_json
from llmesh.services.emulator import FAULT_NAMES
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc

ROUTE = "chaos"
TARGETS = ("emulator/chaos-a", "emulator/chaos-b")
FAULTS = tuple(sorted(FAULT_NAMES))
PROMPT = "tell me about the weather in Oslo and in Bergen today please"


@dataclass(frozen=True)
class ChaosSettings:
    """One chaos soak."""

    minutes: float = 10.0
    """Length of the load."""
    concurrency: int = 16
    """Concurrent callers; a quarter use the gateway."""
    fault_rate: float = 0.3
    """Share of upstream requests given a fault."""
    fault_period: float = 1.0
    """Seconds before another fault kind is drawn."""
    call_timeout: float = 30.0
    """Each call's deadline in seconds."""
    hang_grace: float = 10.0
    """Seconds past its deadline after which a call still running counts as hung."""
    sample_every: float = 5.0
    """Seconds between samples of memory and descriptors."""
    max_growth_pct: float = 5.0
    """The target: growth from the first minute to the last, in percent."""


@dataclass
class Tally:
    """What the callers saw."""

    calls: int = 0
    ok: int = 0
    hung: int = 0
    unterminated: int = 0
    """Streams that ended without a terminal event (a cut that looks like a finish)."""
    outcomes: dict[str, int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    """Request ids of calls that reached a provider."""

    def count(self, outcome: str) -> None:
        self.calls += 1
        self.ok += outcome == "ok"
        self.unterminated += outcome == "unterminated"
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


async def _grpc_stream(stub: Any, timeout: float, tally: Tally) -> str:
    chat = chat_pb2.ChatInput(
        model=ROUTE, messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=PROMPT)]
    )
    finished = False
    try:
        async for ev in stub.StreamChat(
            orchestrator_pb2.StreamChatRequest(input=chat), timeout=timeout
        ):
            kind = ev.WhichOneof("event")
            if kind == "start":
                tally.seen.add(ev.start.request_id)
            elif kind == "finish":
                finished = True
    except grpc.aio.AioRpcError as err:
        return f"grpc {err.code().name}"
    return "ok" if finished else "unterminated"


async def _gateway(session: aiohttp.ClientSession, url: str, stream: bool, tally: Tally) -> str:
    body = {"model": ROUTE, "stream": stream, "messages": [{"role": "user", "content": PROMPT}]}
    async with session.post(f"{url}/v1/chat/completions", json=body) as r:
        if r.status == 200 and "x-request-id" in r.headers:
            tally.seen.add(r.headers["x-request-id"])
        if not stream or r.status != 200:
            await r.read()
            return "ok" if r.status == 200 else f"http {r.status}"
        done = error = False
        async for raw in r.content:
            line = raw.decode().strip()
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: ") and '"error"' in line[:20]:
                error = True
        if error:
            return "sse error"
        return "ok" if done else "unterminated"


async def _callers(
    stub: Any, session: aiohttp.ClientSession, gateway_url: str, s: ChaosSettings, end: float
) -> Tally:
    tally = Tally()

    async def caller(i: int) -> None:
        n = 0
        while perf_counter() < end:
            n += 1
            if i % 4 == 3:
                call = _gateway(session, gateway_url, n % 2 == 0, tally)
            else:
                call = _grpc_stream(stub, s.call_timeout, tally)
            try:
                outcome = await asyncio.wait_for(call, s.call_timeout + s.hang_grace)
            except TimeoutError:
                tally.hung += 1
                outcome = "hung"
            except (aiohttp.ClientError, OSError) as exc:
                outcome = f"client {type(exc).__name__}"
            tally.count(outcome)
            if outcome != "ok":
                await asyncio.sleep(0.05)  # as a client backs off (open breakers answer at once)

    await asyncio.gather(*(caller(i) for i in range(s.concurrency)))
    return tally


async def _faulter(
    session: aiohttp.ClientSession, emulator: str, s: ChaosSettings, end: float
) -> list[str]:
    """Draw a fault kind every `fault_period` seconds; the kinds drawn, in order."""
    rng = random.Random()
    drawn: list[str] = []
    while perf_counter() < end:
        kind = rng.choice(FAULTS)
        rule = {"model": "*", "fault": kind, "rate": s.fault_rate, "after": 2, "retry_after": 0.5}
        async with session.post(f"{emulator}/emulator/faults", json=rule) as r:
            r.raise_for_status()
        drawn.append(kind)
        await asyncio.sleep(s.fault_period)
    async with session.delete(f"{emulator}/emulator/faults") as r:
        r.raise_for_status()
    return drawn


async def _watch(
    session: aiohttp.ClientSession,
    metrics_url: str,
    pids: dict[str, int],
    s: ChaosSettings,
    t0: float,
    end: float,
    samples: list[ProcSample],
    breakers: BreakerWatch,
) -> None:
    next_sample = perf_counter() + s.sample_every  # under load, not idle at the start
    while perf_counter() < end:
        try:
            async with session.get(metrics_url) as r:
                breakers.read(await r.text())
        except aiohttp.ClientError:
            pass
        if perf_counter() >= next_sample:
            samples.extend(sample(round(perf_counter() - t0, 1), pids))
            next_sample += s.sample_every
        await asyncio.sleep(0.5)


def _config(directory: Path, emulator_port: int, metrics_port: int) -> Path:
    config = {
        "emulator": {"host": "127.0.0.1", "port": emulator_port},
        "routes": {ROUTE: {"targets": list(TARGETS), "first_token_timeout": 5, "stall_timeout": 3}},
        "resilience": {
            "breaker": {"fail_max": 3, "reset_timeout": 2},
            "retry": {"max_attempts": 2},
        },
        "orchestrator": {"shutdown_grace": 5},
        "ledger": {"flush_interval": 0.05},
        "cache": {"response": {"enabled": False}},
        "prices": {"emulator/*": {"input": 1, "output": 2}},
        "telemetry": {"metrics": {"enabled": True, "orchestrator_port": metrics_port}},
    }
    path = directory / "llmesh.chaos.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def _start_mesh(directory: Path) -> tuple[dict[str, Service], dict[str, str], Path]:
    ports = {name: free_port() for name in ("emulator", "orchestrator", "gateway", "metrics")}
    database = directory / "ledger.db"
    env = clean_env(
        {
            "LLMESH_CONFIG": str(_config(directory, ports["emulator"], ports["metrics"])),
            "LLMESH_DATABASE_URL": f"sqlite:///{database}",
            "LLMESH_ORCHESTRATOR_ADDRESS": f"127.0.0.1:{ports['orchestrator']}",
            "LLMESH_GATEWAY_PORT": str(ports["gateway"]),
            "LLMESH_PROCESSOR_ADDRESS": f"127.0.0.1:{free_port()}",
        }
    )
    services: dict[str, Service] = {}
    try:
        for name in ("emulator", "orchestrator", "gateway"):
            services[name] = await start(
                name, llmesh_argv("serve", name), port=ports[name], pin=(), logs=directory, env=env
            )
    except BaseException:
        for service in reversed(services.values()):
            service.stop()
        raise
    urls = {
        "emulator": f"http://127.0.0.1:{ports['emulator']}",
        "orchestrator": f"127.0.0.1:{ports['orchestrator']}",
        "gateway": f"http://127.0.0.1:{ports['gateway']}",
        "metrics": f"http://127.0.0.1:{ports['metrics']}/metrics",
    }
    return services, urls, database


async def run_chaos(s: ChaosSettings, out: Path) -> tuple[str, Path, bool]:
    """Run the soak; the markdown report, the JSON path, and whether every check passed."""
    with tempfile.TemporaryDirectory(prefix="llmesh-chaos-") as tmp:
        services, urls, database = await _start_mesh(Path(tmp))
        pids = {name: svc.pid for name, svc in services.items()}
        samples: list[ProcSample] = []
        breakers = BreakerWatch()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        channel = grpc_channel(urls["orchestrator"])
        try:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            t0 = perf_counter()
            end = t0 + s.minutes * 60
            tally, drawn, _ = await asyncio.gather(
                _callers(stub, session, urls["gateway"], s, end),
                _faulter(session, urls["emulator"], s, end),
                _watch(session, urls["metrics"], pids, s, t0, end, samples, breakers),
            )
            samples.extend(sample(round(perf_counter() - t0, 1), pids))
            async with session.get(f"{urls['emulator']}/emulator/stats") as r:
                stats = await r.json()
            async with session.get(f"{urls['emulator']}/emulator/faults") as r:
                injected = (await r.json())["injected"]
            await channel.close()
            services["gateway"].stop()
            services["orchestrator"].stop()  # SIGTERM: the writer flushes
            ledger = check_ledger(str(database), tally.seen, int(stats["requests"]))
        finally:
            await session.close()
            for svc in reversed(services.values()):
                svc.stop()
    window = min(60.0, s.minutes * 60 / 2)
    growths = {
        f"{name} {label}": growth(samples, name, what, window, peak=what == "fds")
        for name in ("orchestrator", "gateway", "emulator")
        for what, label in (("rss_mib", "RSS (mean)"), ("fds", "open fds (peak)"))
    }
    flat = all(
        g is not None and g < s.max_growth_pct
        for key, g in growths.items()
        if not key.startswith("emulator")
    )
    checks = {
        "no hung stream": tally.hung == 0 and tally.unterminated == 0,
        "one ledger row per call": ledger.ok,
        "breakers opened and closed": breakers.opened > 0 and breakers.reclosed > 0,
        "RSS and fds flat": flat,
    }
    result = {
        "settings": asdict(s),
        "calls": tally.calls,
        "ok": tally.ok,
        "hung": tally.hung,
        "unterminated": tally.unterminated,
        "seen": len(tally.seen),
        "outcomes": dict(sorted(tally.outcomes.items())),
        "upstream": {k: stats[k] for k in ("requests", "completed", "disconnects", "aborted")},
        "faults_injected": injected,
        "fault_kinds_drawn": sorted(set(drawn)),
        "ledger": ledger.to_dict(),
        "breakers": {
            "opened": breakers.opened,
            "reclosed": breakers.reclosed,
            "changes": breakers.changes,
        },
        "growth_pct": growths,
        "checks": checks,
        "samples": [asdict(x) for x in samples],
    }
    table = _table(result)
    path = write_json(out, {**result, "table": table}, prefix="soak-chaos-")
    return table, path, all(checks.values())


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f} %"


def _table(r: dict[str, Any]) -> str:
    s, led = r["settings"], r["ledger"]
    faults = sum(r["faults_injected"].values())
    lines = [
        f"llmesh chaos soak: {s['minutes']:g} min at c={s['concurrency']}, "
        f"{s['fault_rate']:.0%} of upstream requests faulted",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| calls (gRPC streams, gateway) | {r['calls']:,} |",
        f"| calls ok | {r['ok']:,} |",
        f"| upstream requests | {r['upstream']['requests']:,} |",
        f"| faults injected ({len(r['faults_injected'])} kinds) | {faults:,} "
        f"({faults / max(r['upstream']['requests'], 1):.1%}) |",
        f"| hung streams / streams without a terminal event | {r['hung']} / {r['unterminated']} |",
        f"| ledger rows / calls seen reaching a provider | {led['rows']:,} / "
        f"{r['seen']:,} ({led['missing_count']} without a row) |",
        f"| attempts in the ledger / upstream requests | {led['attempts']:,} / "
        f"{led['upstream_requests']:,} |",
        f"| calls left in flight | {led['in_flight']} |",
        f"| breakers opened / closed again | {r['breakers']['opened']} / "
        f"{r['breakers']['reclosed']} |",
    ]
    for key, g in r["growth_pct"].items():
        lines.append(f"| {key} growth, first to last minute | {_pct(g)} |")
    lines += ["", "outcomes: " + ", ".join(f"{k} {v}" for k, v in r["outcomes"].items()), ""]
    for name, passed in r["checks"].items():
        lines.append(f"- {name}: {'pass' if passed else '**FAIL**'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bench.soak_chaos [--minutes M] [--concurrency C]``."""
    p = argparse.ArgumentParser(prog="python -m bench.soak_chaos", description=__doc__)
    p.add_argument("--minutes", type=float, default=ChaosSettings.minutes)
    p.add_argument("--concurrency", type=int, default=ChaosSettings.concurrency)
    p.add_argument("--fault-rate", type=float, default=ChaosSettings.fault_rate)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    settings = ChaosSettings(
        minutes=args.minutes, concurrency=args.concurrency, fault_rate=args.fault_rate
    )
    table, path, passed = asyncio.run(run_chaos(settings, args.out))
    print(table)
    print(f"\nJSON: {path}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
