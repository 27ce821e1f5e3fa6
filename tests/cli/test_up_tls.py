"""`llmesh up` on mutual TLS: every worker serves the certificates of the one configuration
file; grpcurl, the CLI and the openai SDK reach the mesh with the CA and a client
certificate; a bad file stops `llmesh up` before anything starts, naming the file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.cli.test_up import _grpcurl, _split_json
from tests.support.tls import Pki
from tests.support.up import BIN, start_up, up_env, up_ports


def _tls_yaml(pki: Pki, key: Path | None = None) -> str:
    return (
        "aliases: {fast: emulator/echo}\n"
        "tls:\n"
        f"  cert: {pki.server_cert}\n"
        f"  key: {key or pki.server_key}\n"
        f"  client_ca: {pki.ca}\n"
        f"  ca: {pki.ca}\n"
        f"  client_cert: {pki.client_cert}\n"
        f"  client_key: {pki.client_key}\n"
    )


@pytest.fixture(scope="module")
def up_tls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("up-tls")
    ports = up_ports()
    env = up_env(tmp, ports)
    (tmp / "llmesh.yaml").write_text(_tls_yaml(pki))
    proc, lines = start_up(env)
    banner = "".join(lines)
    try:
        yield {
            "orch": env["LLMESH_ORCHESTRATOR_ADDRESS"],
            "proc": env["LLMESH_PROCESSOR_ADDRESS"],
            "gw": f"https://127.0.0.1:{ports['gw']}",
            "banner": banner,
            "config": env["LLMESH_CONFIG"],
        }
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest


def _grpcurl_tls(pki: Pki, *args: str, cert: bool = True) -> subprocess.CompletedProcess[str]:
    tls = ["-cacert", str(pki.ca)]
    if cert:
        tls += ["-cert", str(pki.client_cert), "-key", str(pki.client_key)]
    return subprocess.run([_grpcurl(), *tls, *args], capture_output=True, text=True, timeout=30)


def test_the_banner_says_tls(up_tls: dict[str, str]) -> None:
    assert f"grpc://{up_tls['orch']} (mTLS)" in up_tls["banner"]
    assert f"grpc://{up_tls['proc']} (mTLS)" in up_tls["banner"]
    assert up_tls["gw"] in up_tls["banner"]


def test_grpcurl_over_tls_lists_services_and_streams_a_reply(
    up_tls: dict[str, str], pki: Pki
) -> None:
    for _ in range(4):  # new connections, spread over both orchestrator workers
        out = _grpcurl_tls(pki, up_tls["orch"], "list")
        assert out.returncode == 0, out.stderr
        assert "llmesh.v1.OrchestratorService" in out.stdout.split()
    out = _grpcurl_tls(pki, up_tls["proc"], "list")
    assert "llmesh.v1.ProcessorService" in out.stdout.split(), out.stderr
    body = json.dumps(
        {"input": {"model": "fast", "messages": [{"role": "ROLE_USER", "content": "hi tls"}]}}
    )
    out = _grpcurl_tls(pki, "-d", body, up_tls["orch"], "llmesh.v1.OrchestratorService/StreamChat")
    assert out.returncode == 0, out.stderr
    events = [json.loads(chunk) for chunk in _split_json(out.stdout)]
    deltas = [e.get("text_delta") or e.get("textDelta") for e in events]
    assert "".join(d["text"] for d in deltas if d) == "hi tls"
    assert next(iter(events[-1])) == "finish"


def test_grpcurl_without_a_client_certificate_or_over_plaintext_fails(
    up_tls: dict[str, str], pki: Pki
) -> None:
    out = _grpcurl_tls(pki, up_tls["orch"], "list", cert=False)
    assert out.returncode != 0
    plain = subprocess.run(
        [_grpcurl(), "-plaintext", up_tls["orch"], "list"], capture_output=True, text=True
    )
    assert plain.returncode != 0


def up_tls_env(up_tls: dict[str, str]) -> dict[str, str]:
    """The environment `llmesh chat` finds the mesh's orchestrator and TLS files in."""
    return os.environ | {
        "LLMESH_CONFIG": up_tls["config"],
        "LLMESH_ORCHESTRATOR_ADDRESS": up_tls["orch"],
    }


def test_the_cli_and_the_openai_sdk_over_tls(up_tls: dict[str, str], pki: Pki) -> None:
    chat = subprocess.run(
        [str(BIN / "llmesh"), "chat", "cli over tls"],
        capture_output=True,
        text=True,
        timeout=30,
        env=up_tls_env(up_tls),
    )
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip() == "cli over tls"
    for _ in range(4):  # new connections, spread over both gateway workers
        with httpx.Client(verify=pki.client_context()) as http:
            client = openai.OpenAI(
                base_url=up_tls["gw"] + "/v1", api_key="unused", max_retries=0, http_client=http
            )
            reply = client.chat.completions.create(
                model="fast", messages=[{"role": "user", "content": "sdk over tls"}]
            )
            assert reply.choices[0].message.content == "sdk over tls"
            assert http.get(up_tls["gw"] + "/readyz").status_code == 200


def test_a_mismatched_key_stops_up_before_anything_starts(pki: Pki, tmp_path: Path) -> None:
    ports = up_ports()
    env = up_env(tmp_path, ports)
    (tmp_path / "llmesh.yaml").write_text(_tls_yaml(pki, key=pki.client_key))
    out = subprocess.run(
        [str(BIN / "llmesh"), "up"], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"llmesh: tls: key file {pki.client_key} of the orchestrator does not match the "
        f"certificate in cert file {pki.server_cert}"
    ]
    for port in ports.values():
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
