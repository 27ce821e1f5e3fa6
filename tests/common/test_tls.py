"""TLS files are checked before anything listens: a bad one fails naming itself."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.ports import free_port
from llmesh.gateway.balancing import channel_target, service_config
from llmesh.gateway.server import uvicorn_config
from llmesh.gateway.settings import GatewaySettings
from llmesh.services.common.config import ConfigError
from llmesh.services.common.grpc_server import start_server
from llmesh.services.common.metrics_settings import MetricsSettings
from llmesh.services.common.tls import (
    TlsError,
    channel,
    check_client,
    check_listener,
    server_credentials,
)
from llmesh.services.common.tls_settings import TlsSettings
from llmesh.services.telemetry import build_metrics
from llmesh.services.telemetry.metrics_http import start_metrics_server
from tests.support.tls import Pki


def _listener(pki: Pki, **changes: str) -> TlsSettings:
    base = TlsSettings(cert=str(pki.server_cert), key=str(pki.server_key), client_ca=str(pki.ca))
    return replace(base, **changes)


def _client(pki: Pki, **changes: str) -> TlsSettings:
    base = TlsSettings(
        ca=str(pki.ca), client_cert=str(pki.client_cert), client_key=str(pki.client_key)
    )
    return replace(base, **changes)


def test_good_files_pass(pki: Pki) -> None:
    check_listener(_listener(pki), "orchestrator")
    check_client(_client(pki), "gateway")
    check_listener(TlsSettings(), "orchestrator")  # plaintext: nothing to check
    check_client(TlsSettings(), "gateway")


def test_a_missing_file_is_named(pki: Pki, tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.pem")
    with pytest.raises(TlsError) as err:
        check_listener(_listener(pki, cert=missing), "orchestrator")
    assert str(err.value) == (
        f"tls: the orchestrator cannot read cert file {missing}: No such file or directory"
    )
    with pytest.raises(TlsError, match=f"processor cannot read client_ca file {tmp_path}"):
        check_listener(_listener(pki, client_ca=str(tmp_path)), "processor")  # a directory
    with pytest.raises(TlsError, match=f"gateway cannot read ca file {missing}"):
        check_client(_client(pki, ca=missing), "gateway")


def test_a_file_without_a_certificate_is_named(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TlsError) as err:
        check_listener(_listener(pki, cert=str(junk)), "processor")
    assert str(err.value).startswith(f"tls: cert file {junk} of the processor holds no PEM")
    with pytest.raises(TlsError, match=f"client_ca file {junk} of the gateway holds no PEM"):
        check_listener(_listener(pki, client_ca=str(junk)), "gateway")
    with pytest.raises(TlsError, match=f"tls: ca file {junk} of the CLI holds no PEM"):
        check_client(_client(pki, ca=str(junk)), "CLI")
    with pytest.raises(TlsError, match=f"key file {junk} of the processor holds no usable"):
        check_listener(_listener(pki, key=str(junk)), "processor")


def test_a_key_of_another_certificate_is_named(pki: Pki) -> None:
    with pytest.raises(TlsError) as err:
        check_listener(_listener(pki, key=str(pki.client_key)), "orchestrator")
    assert str(err.value) == (
        f"tls: key file {pki.client_key} of the orchestrator does not match the certificate "
        f"in cert file {pki.server_cert}"
    )
    with pytest.raises(TlsError, match=f"client_key file {pki.server_key} of the gateway does"):
        check_client(_client(pki, client_key=str(pki.server_key)), "gateway")


async def test_a_grpc_listener_with_bad_files_binds_nothing(pki: Pki) -> None:
    port = free_port()
    bad = _listener(pki, key=str(pki.client_key))
    with pytest.raises(TlsError, match="does not match"):
        await start_server([], f"127.0.0.1:{port}", tls=bad, service="orchestrator")
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    with pytest.raises(TlsError, match="does not match"):
        server_credentials(bad, "orchestrator")
    with pytest.raises(TlsError, match="gateway cannot read ca file"):
        channel("127.0.0.1:1", _client(pki, ca="/nowhere"), "gateway")


def test_the_gateway_listener_and_its_channels_are_checked(pki: Pki) -> None:
    settings = GatewaySettings(tls=replace(_client(pki), cert=str(pki.server_cert), key="/no"))
    with pytest.raises(TlsError, match="the direct HTTP path cannot read key file /no"):
        uvicorn_config(settings, "127.0.0.1", 0, service="direct HTTP path")
    settings = GatewaySettings(tls=_client(pki, client_cert=str(pki.server_cert)))
    with pytest.raises(TlsError, match=r"client_key file .* does not match"):
        uvicorn_config(settings, "127.0.0.1", 0)
    mutual = GatewaySettings(tls=replace(_listener(pki), ca=str(pki.ca)))
    options = uvicorn_config(mutual, "127.0.0.1", 0)
    assert options.ssl_certfile == str(pki.server_cert) and options.ssl_ca_certs == str(pki.ca)


async def test_the_metrics_port_serves_https_to_clients_of_the_ca(pki: Pki) -> None:
    metrics = build_metrics(MetricsSettings(enabled=True), "orchestrator")
    assert metrics is not None
    server = await start_metrics_server(metrics, "127.0.0.1", 0, _listener(pki))
    url = f"https://127.0.0.1:{server.port}/metrics"
    try:
        async with httpx.AsyncClient(verify=pki.client_context()) as client:
            r = await client.get(url)
            assert r.status_code == 200 and "# TYPE" in r.text
        async with httpx.AsyncClient(verify=pki.client_context(cert=False)) as client:
            with pytest.raises(httpx.HTTPError):  # no client certificate: refused
                (await client.get(url)).raise_for_status()
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.HTTPError):
                await client.get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        await server.aclose()
        metrics.shutdown()


async def test_server_name_checks_another_name_than_the_host_dialled(pki: Pki) -> None:
    server = await start_server([], "127.0.0.1:0", tls=_listener(pki), service="orchestrator")
    address = f"127.0.0.1:{server.port}"
    try:
        for name, ok in (("localhost", True), ("elsewhere.example", False)):
            async with channel(address, _client(pki, server_name=name), "test") as ch:
                check = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
                if ok:
                    assert (await check).status == health_pb2.HealthCheckResponse.SERVING
                else:
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await check
                    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.server.stop(None)


def test_python_dash_m_gateway_names_a_missing_tls_file(tmp_path: Path) -> None:
    env = os.environ | {"LLMESH_TLS_CERT": str(tmp_path / "no.pem"), "LLMESH_TLS_KEY": "k"}
    out = subprocess.run(
        [sys.executable, "-m", "llmesh.gateway", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        f"python -m llmesh.gateway: tls: the gateway cannot read cert file {tmp_path}/no.pem: "
        "No such file or directory"
    )


async def test_ip_replica_lists_over_tls_need_a_server_name(pki: Pki) -> None:
    servers = [
        await start_server([], "127.0.0.1:0", tls=_listener(pki), service="orchestrator")
        for _ in range(2)
    ]
    replicas = ",".join(f"127.0.0.1:{s.port}" for s in servers)
    with pytest.raises(ConfigError, match=r"set tls.server_name \(or tls.gateway.server_name\)"):
        GatewaySettings(orchestrator_address=replicas, tls=_client(pki))
    with pytest.raises(ConfigError, match="dials processor replicas by IP address"):
        GatewaySettings(processor_address=replicas, tls=_client(pki))
    GatewaySettings(orchestrator_address=replicas)  # plaintext: nothing to check
    try:
        named = GatewaySettings(
            orchestrator_address=replicas, tls=_client(pki, server_name="localhost")
        )
        balanced = [("grpc.service_config", service_config(None))]  # round robin, as Upstream
        async with channel(channel_target(replicas), named.tls, "t", options=balanced) as ch:
            for _ in range(4):  # round robin: both replicas pass the check of one name
                check = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
                assert (await check).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for s in servers:
            await s.server.stop(None)
