"""kill -9 an orchestrator mid-stream, restart it: every call that reached the upstream has
exactly one ledger row, the killed ones ``interrupted`` with their estimated usage.

Real processes (``llmesh serve emulator`` and ``llmesh serve orchestrator``), on a SQLite
file and on the machine's PostgreSQL. The emulator counts the requests it received per
model; the streams of the slow model stall after their first piece until the client goes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
import yaml

from bench.ports import free_port
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.replicas import BIN, _listening

STREAMS = 8
"""Streams in flight when the orchestrator is killed."""
FINISHED = 4
"""Calls that finish before the kill."""


@dataclass
class Procs:
    """An emulator and one orchestrator (restartable) sharing one configuration."""

    workdir: Path
    database_url: str
    emulator_port: int = field(default_factory=free_port)
    orchestrator_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def write_config(self) -> None:
        config = {
            "emulator": {"host": "127.0.0.1", "port": self.emulator_port},
            "ledger": {"url": self.database_url, "flush_interval": 0.05, "lease": 30},
            "resilience": {"retry": {"max_attempts": 1}},
            "prices": {"emulator/*": {"input": 10, "output": 10}},
        }
        (self.workdir / "llmesh.yaml").write_text(yaml.safe_dump(config))

    def spawn(self, name: str, service: str, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMESH_", "OTEL_"))}
        env.pop("OPENAI_BASE_URL", None)
        env.pop("ANTHROPIC_BASE_URL", None)
        env |= {
            "LLMESH_CONFIG": str(self.workdir / "llmesh.yaml"),
            "LLMESH_ORCHESTRATOR_ADDRESS": f"127.0.0.1:{self.orchestrator_port}",
            "PYTHONUNBUFFERED": "1",
        }
        with open(self.workdir / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [str(BIN / "llmesh"), "serve", service], env=env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 45
        while not _listening(port):
            if self.procs[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.workdir / f"{name}.log").read_text(errors="replace"))
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _create_schema(server: str, schema: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def procs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Procs]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'usage.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        schema = request.getfixturevalue("pg_schema")
        asyncio.run(_create_schema(server, schema))  # the API keys' store expects it
        url = f"{server}?schema={schema}"
    made = Procs(tmp_path, url)
    made.write_config()
    try:
        made.spawn("emulator", "emulator", made.emulator_port)
        made.spawn("orchestrator", "orchestrator", made.orchestrator_port)
        yield made
    finally:
        made.stop()


@dataclass
class Stream:
    request_id: str = ""
    text: str = ""
    error: str = ""
    finished: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)


async def _stream(address: str, model: str, seen: Stream) -> Stream:
    inp = chat_pb2.ChatInput(
        model=model,
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="one two three four five")],
    )
    async with grpc.aio.insecure_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        try:
            async for ev in stub.StreamChat(
                orchestrator_pb2.StreamChatRequest(input=inp), timeout=60
            ):
                kind = ev.WhichOneof("event")
                if kind == "start":
                    seen.request_id = ev.start.request_id
                elif kind == "text_delta":
                    seen.text += ev.text_delta.text
                    seen.started.set()
                elif kind == "finish":
                    seen.finished = True
        except grpc.aio.AioRpcError as err:
            seen.error = err.code().name
    return seen


async def _rows(url: str) -> list[dict[str, Any]]:
    sql = "SELECT request_id, route, status, input_tokens, output_tokens, cost_usd FROM {}"
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            conn.row_factory = sqlite3.Row
            rows = [dict(r) for r in conn.execute(sql.format("usage_records"))]
            starts = conn.execute("SELECT COUNT(*) FROM call_starts").fetchone()[0]
        finally:
            conn.close()
    else:
        server, _, schema = url.partition("?schema=")
        pg = await asyncpg.connect(server)
        try:
            rows = [dict(r) for r in await pg.fetch(sql.format(f'"{schema}".usage_records'))]
            starts = await pg.fetchval(f'SELECT COUNT(*) FROM "{schema}".call_starts')
        finally:
            await pg.close()
    assert starts == 0, "calls still in flight"
    return rows


async def test_kill_9_mid_stream_leaves_one_interrupted_row_per_call_that_reached_upstream(
    procs: Procs,
) -> None:
    run = uuid.uuid4().hex[:8]
    slow, fast = f"slow-{run}", f"fast-{run}"
    emulator = f"http://127.0.0.1:{procs.emulator_port}"
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            f"{emulator}/emulator/faults", json={"model": slow, "fault": "stall", "after": 1}
        )
        r.raise_for_status()
    address = f"127.0.0.1:{procs.orchestrator_port}"
    done = await asyncio.gather(
        *(_stream(address, f"emulator/{fast}", Stream()) for _ in range(FINISHED))
    )
    assert all(s.finished for s in done), done
    seen = [Stream() for _ in range(STREAMS)]
    tasks = [asyncio.ensure_future(_stream(address, f"emulator/{slow}", s)) for s in seen]
    await asyncio.wait_for(asyncio.gather(*(s.started.wait() for s in seen)), 30)
    await asyncio.sleep(0.3)  # a few flush intervals: the documented bound of a loss

    orchestrator = procs.procs["orchestrator"]
    orchestrator.send_signal(signal.SIGKILL)
    await asyncio.to_thread(orchestrator.wait, 10)
    killed = await asyncio.gather(*tasks)
    assert all(s.error == "UNAVAILABLE" and not s.finished for s in killed), killed

    await asyncio.to_thread(procs.spawn, "orchestrator", "orchestrator", procs.orchestrator_port)
    async with httpx.AsyncClient(timeout=10) as client:
        stats = (await client.get(f"{emulator}/emulator/stats")).json()["by_model"]
    assert (stats[slow]["requests"], stats[fast]["requests"]) == (STREAMS, FINISHED)

    rows = await _rows(procs.database_url)
    by_id = {r["request_id"]: r for r in rows}
    assert len(by_id) == len(rows)  # one row per call
    slow_rows = [r for r in rows if r["route"] == f"emulator/{slow}"]
    fast_rows = [r for r in rows if r["route"] == f"emulator/{fast}"]
    assert (len(slow_rows), len(fast_rows)) == (STREAMS, FINISHED)  # = what reached upstream
    assert {by_id[s.request_id]["status"] for s in killed} == {"interrupted"}
    assert {by_id[s.request_id]["status"] for s in done} == {"ok"}
    for r in slow_rows:
        assert r["input_tokens"] > 0 and r["output_tokens"] == 0 and r["cost_usd"] > 0, r
