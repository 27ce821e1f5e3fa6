"""`llmesh up --workers N`: N orchestrator and N gateway processes on shared ports, supervised."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.up import BIN, start_up, up_env, up_ports


def _env(tmp_path: Path) -> dict[str, str]:
    return up_env(tmp_path, up_ports())


def _workers(up: subprocess.Popen[str], service: str) -> dict[int, int]:
    """The pids of `service`'s workers by index, from the children of `up`."""
    found: dict[int, int] = {}
    for pid in subprocess.run(
        ["pgrep", "-P", str(up.pid)], capture_output=True, text=True
    ).stdout.split():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if service in argv and "--worker" in argv:
            found[int(argv[argv.index("--worker") + 1].split("/")[0])] = int(pid)
    return found


def _sockets(pid: int, port: int) -> dict[str, int]:
    """How many TCP sockets `pid` holds on local `port`, by state (LISTEN, ESTABLISHED)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    states = {"0A": "LISTEN", "01": "ESTABLISHED"}
    counts: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[9] in inodes:
                state = states.get(cols[3], cols[3])
                counts[state] = counts.get(state, 0) + 1
    return counts


def _chat(address: str, text: str) -> str:
    """One StreamChat call on a fresh connection (so the kernel picks a worker for it)."""
    request = orchestrator_pb2.StreamChatRequest(
        input=chat_pb2.ChatInput(
            model="emulator/echo",
            messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=text)],
        )
    )
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(address, options=options) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        # a client's usual stance: a connection refused or reset before the call started
        # (as one a killed worker held) is tried again, within the call's deadline
        events = list(stub.StreamChat(request, timeout=30, wait_for_ready=True))
    return "".join(e.text_delta.text for e in events if e.WhichOneof("event") == "text_delta")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[str], dict]]:
    tmp_path = tmp_path_factory.mktemp("workers")
    env = _env(tmp_path)
    Path(env["LLMESH_CONFIG"]).write_text("")
    up, _ = start_up(env, "--workers", "2")
    try:
        yield up, env
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()  # and closes its output


def test_two_workers_each_serve_calls_on_the_shared_ports(mesh: tuple) -> None:
    up, env = mesh
    orch_port = int(env["LLMESH_ORCHESTRATOR_ADDRESS"].rpartition(":")[2])
    gw_port = int(env["LLMESH_GATEWAY_PORT"])
    for service, port in (("orchestrator", orch_port), ("gateway", gw_port)):
        pids = _workers(up, service)
        assert sorted(pids) == [0, 1]
        for pid in pids.values():
            assert _sockets(pid, port).get("LISTEN") == 1, (service, pid)
    # connections held open at once: the kernel spreads them over both workers
    channels = [
        grpc.insecure_channel(
            env["LLMESH_ORCHESTRATOR_ADDRESS"], options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(16)
    ]
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{gw_port}") for _ in range(16)]
    try:
        for i, channel in enumerate(channels):
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            models = stub.ListModels(orchestrator_pb2.ListModelsRequest(), timeout=30)
            assert models.models, i
        for client in clients:
            reply = client.post(
                "/v1/chat/completions",
                json={"model": "emulator/echo", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["choices"][0]["message"]["content"] == "hi"
        for service, port in (("orchestrator", orch_port), ("gateway", gw_port)):
            for pid in _workers(up, service).values():
                # the gateway's own channels to the orchestrator count there too
                assert _sockets(pid, port).get("ESTABLISHED", 0) >= 1, (service, pid)
    finally:
        for channel in channels:
            channel.close()
        for client in clients:
            client.close()


def test_each_gateway_worker_opens_channels_to_reach_every_orchestrator_worker(
    mesh: tuple,
) -> None:
    up, _ = mesh
    for pid in _workers(up, "gateway").values():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"LLMESH_GATEWAY_ORCHESTRATOR_CHANNELS=8" in environ  # 4 per worker


def test_a_killed_worker_is_restarted_and_calls_keep_succeeding(mesh: tuple) -> None:
    up, env = mesh
    address = env["LLMESH_ORCHESTRATOR_ADDRESS"]
    victim = _workers(up, "orchestrator")[1]
    os.kill(victim, signal.SIGKILL)
    # a connection the kernel handed the victim as it died is reset before the call starts
    # (UNAVAILABLE, which _chat waits through); the other worker answers
    for i in range(10):  # the other worker answers while the victim is down
        assert _chat(address, f"call {i}") == f"call {i}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pid = _workers(up, "orchestrator").get(1)
        if pid not in (None, victim) and _sockets(pid, int(address.rpartition(":")[2])):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the killed worker was not restarted")
    for i in range(10):
        assert _chat(address, f"again {i}") == f"again {i}"


def test_sigterm_stops_every_worker(mesh: tuple) -> None:
    up, env = mesh
    pids = [*_workers(up, "orchestrator").values(), *_workers(up, "gateway").values()]
    assert len(pids) == 4
    up.send_signal(signal.SIGTERM)
    rest, _ = up.communicate(timeout=60)
    assert up.returncode == 0, rest
    assert re.search(r"orchestrator worker 1 \(pid \d+\) exited with -9; restarting it", rest)
    assert "orchestrator worker 1 restarted" in rest
    assert "stopped" in rest and "killing" not in rest
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    for name in ("LLMESH_ORCHESTRATOR_ADDRESS", "LLMESH_GATEWAY_PORT"):
        port = int(env[name].rpartition(":")[2])
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_budgets_without_redis_refuse_more_than_one_worker(tmp_path: Path) -> None:
    env = _env(tmp_path)
    Path(env["LLMESH_CONFIG"]).write_text("budgets: {tenants: {acme: {daily_usd: 5}}}\n")
    done = subprocess.run(
        [str(BIN / "llmesh"), "up", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "llmesh: budgets need Redis with 2 orchestrator workers (each would hold the whole "
        "cap): set budgets.redis_url, or run with --workers 1"
    ]
    assert "emulator" not in done.stdout  # nothing started


def test_budgets_without_redis_run_on_one_worker(tmp_path: Path) -> None:
    env = _env(tmp_path)
    Path(env["LLMESH_CONFIG"]).write_text("budgets: {tenants: {acme: {daily_usd: 5}}}\n")
    up, lines = start_up(env, "--workers", "1")
    try:
        assert "(2 workers)" not in "".join(lines)
        assert _chat(env["LLMESH_ORCHESTRATOR_ADDRESS"], "one") == "one"
    finally:
        up.send_signal(signal.SIGTERM)
        up.communicate(timeout=60)
    assert up.returncode == 0


def test_a_worker_that_keeps_crashing_stops_up_with_one_line(tmp_path: Path) -> None:
    """Once the configuration turns bad, a killed worker cannot start again: `up` gives up."""
    env = _env(tmp_path)
    config = Path(env["LLMESH_CONFIG"])
    config.write_text("")
    up, _ = start_up(env, "--workers", "2")
    try:
        config.write_text("orchestrator: {workers: 0}\n")  # every new process refuses it
        os.kill(_workers(up, "orchestrator")[0], signal.SIGKILL)
        rest, _ = up.communicate(timeout=120)
    finally:
        if up.poll() is None:  # pragma: no cover
            up.kill()
            up.communicate()
    assert up.returncode == 1, rest
    gave_up = [line for line in rest.splitlines() if "keeps crashing" in line]
    assert len(gave_up) == 1, rest
    assert gave_up[0].startswith("llmesh: orchestrator worker 0 (pid ")
    assert "stopped" in rest


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "llmesh"), "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_only_the_orchestrator_and_the_gateway_serve_as_workers(tmp_path: Path) -> None:
    env = _env(tmp_path)
    Path(env["LLMESH_CONFIG"]).write_text("")
    done = _serve(env, "processor", "--worker", "0/2")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "llmesh: only the orchestrator and the gateway run as workers"
    ]
    bad = _serve(env, "orchestrator", "--worker", "2/2")
    assert bad.returncode == 2 and "expected I/N with 0 <= I < N" in bad.stderr


def test_a_worker_started_alone_refuses_budgets_without_redis(tmp_path: Path) -> None:
    env = _env(tmp_path)
    Path(env["LLMESH_CONFIG"]).write_text("budgets: {sessions: {daily_usd: 1}}\n")
    done = _serve(env, "orchestrator", "--worker", "1/3")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(
        "llmesh: budgets need Redis with 3 orchestrator workers"
    )
