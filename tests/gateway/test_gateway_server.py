"""Starting and stopping the gateway: embedded on port 0, and as ``python -m llmesh.gateway``."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import httpx

from bench.ports import dead_address, free_port
from llmesh.gateway import GatewaySettings, RunningGateway, create_app, start


def test_create_app_has_no_side_effects() -> None:
    app = create_app(GatewaySettings(orchestrator_address="unreachable.invalid:1"))
    assert {getattr(r, "path", None) for r in app.routes} >= {
        "/api/v1/chat",
        "/api/v1/chat/ws",
        "/v1/chat/completions",
        "/healthz",
    }


async def test_healthz_without_an_orchestrator_is_503() -> None:
    dead = dead_address()
    running = await start(GatewaySettings(orchestrator_address=dead, health_timeout=0.5))
    try:
        async with httpx.AsyncClient(base_url=running.url) as client:
            r = await client.get("/healthz")
            assert r.status_code == 503
            assert r.json()["status"] == "NOT_SERVING"
            r = await client.post(
                "/api/v1/chat",
                json={"input": {"model": "m"}},
                headers={"x-llmesh-timeout": "0.5"},
            )
            assert r.status_code in (503, 504)  # unreachable, or the deadline came first
            assert r.json()["error"]["reason"] in ("SERVICE_UNREACHABLE", "DEADLINE_EXCEEDED")
    finally:
        await running.stop()
    assert running.task.done()


async def test_python_dash_m_gateway_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmesh.gateway",
        "--port",
        str(port),
        "--orchestrator",
        "127.0.0.1:1",
        "--processor",
        "127.0.0.1:1",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LLMESH_LOG_LEVEL": "WARNING"},
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(200):
                try:
                    r = await client.get("/nowhere")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            assert r.status_code == 404
            assert r.json()["error"]["code"] == 404
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, stderr.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _accepted(port: int) -> list[socket.socket]:
    """This process's connected sockets whose local port is `port` (the server's side of
    connections to it), each a duplicate to close."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            copy = os.dup(int(fd))
        except OSError:
            continue  # the listing's own descriptor, closed by now
        try:
            sock = socket.socket(fileno=copy)
        except OSError:  # not a socket
            os.close(copy)
            continue
        try:
            if sock.type == socket.SOCK_STREAM and sock.getsockname()[1] == port:
                sock.getpeername()  # connected, not the listener
                found.append(sock)
                continue
        except (OSError, IndexError, TypeError):
            pass
        sock.close()
    return found


async def test_responses_are_not_held_back_by_nagle(
    gateway: RunningGateway, http: httpx.AsyncClient
) -> None:
    # Without TCP_NODELAY on accepted connections, each response waits for a delayed ACK
    # (40 ms on Linux): ten sequential requests would take 400 ms or more.
    assert (await http.get("/nowhere")).status_code == 404  # the connection is kept open
    accepted = _accepted(gateway.port)
    try:
        assert accepted, "no accepted connection found"
        for sock in accepted:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        for sock in accepted:
            sock.close()
