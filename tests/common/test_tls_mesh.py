"""A whole mesh on mutual TLS: gRPC, the gateway and the direct HTTP path over HTTPS, the
gateway's channels to the orchestrator and processor on TLS too, and every client without
the CA or without a certificate refused at the handshake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import grpc
import httpx
import openai
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmesh.services.common.config import ProviderConfig
from llmesh.services.common.tls import channel
from llmesh.services.common.tls_settings import TlsSettings
from llmesh.services.orchestrator.server import serve
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.mesh import Mesh
from tests.support.tls import Pki


@pytest.fixture(scope="module")
def tls_mesh(pki: Pki) -> Iterator[Mesh]:
    m = Mesh().start({"tls": pki.mutual()})
    try:
        yield m
    finally:
        m.stop()


def _client_tls(pki: Pki, *, cert: bool = True, ca: str | None = None) -> TlsSettings:
    return TlsSettings(
        ca=ca or str(pki.ca),
        client_cert=str(pki.client_cert) if cert else None,
        client_key=str(pki.client_key) if cert else None,
    )


def _chat(text: str, model: str = "fast") -> orchestrator_pb2.ChatRequest:
    message = chat_pb2.Message(role=chat_pb2.ROLE_USER, content=text)
    return orchestrator_pb2.ChatRequest(input=chat_pb2.ChatInput(model=model, messages=[message]))


async def test_a_grpc_call_with_the_ca_and_a_client_certificate_succeeds(
    tls_mesh: Mesh, pki: Pki
) -> None:
    assert tls_mesh.gateway_url.startswith("https://")
    assert tls_mesh.direct_url.startswith("https://")
    async with channel(tls_mesh.orchestrator_address, _client_tls(pki), "test") as ch:
        reply = await orchestrator_pb2_grpc.OrchestratorServiceStub(ch).Chat(
            _chat("over mutual TLS"), timeout=10
        )
        assert reply.message.content == "over mutual TLS"
    for address in (tls_mesh.orchestrator_address, tls_mesh.processor_address):
        async with channel(address, _client_tls(pki), "test") as ch:
            health = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING


def _refused_channels(pki: Pki, address: str) -> dict[str, grpc.aio.Channel]:
    """Channels that must not get through: each misses one thing mutual TLS asks for."""
    return {
        "plaintext": grpc.aio.insecure_channel(address),
        "no CA (the system's roots)": grpc.aio.secure_channel(
            address, grpc.ssl_channel_credentials()
        ),
        "the wrong CA": channel(address, _client_tls(pki, ca=str(pki.other_ca)), "test"),
        "no client certificate": channel(address, _client_tls(pki, cert=False), "test"),
        "a client certificate of another CA": channel(
            address,
            TlsSettings(
                ca=str(pki.ca),
                client_cert=str(pki.other_client_cert),
                client_key=str(pki.other_client_key),
            ),
            "test",
        ),
    }


@pytest.mark.parametrize("service", ["orchestrator", "processor"])
async def test_grpc_without_the_ca_or_a_client_certificate_fails_at_the_handshake(
    tls_mesh: Mesh, pki: Pki, service: str
) -> None:
    address = getattr(tls_mesh, f"{service}_address")
    for what, ch in _refused_channels(pki, address).items():
        async with ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=10
                )
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, what


@pytest.mark.parametrize("where", ["gateway_url", "direct_url"])
def test_the_openai_sdk_over_https(tls_mesh: Mesh, pki: Pki, where: str) -> None:
    base = getattr(tls_mesh, where)
    http = httpx.Client(verify=pki.client_context())
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, http_client=http)
    with client:
        reply = client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "through https"}]
        )
        assert reply.choices[0].message.content == "through https"
        stream = client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "streamed over TLS"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "streamed over TLS"
        # the processor's calls go over TLS too: the gateway's and the direct path's
        tokens = http.post(
            f"{base}/api/v1/tokens/count", json={"model": "openai/gpt-4o", "text": "hello world"}
        )
        assert tokens.status_code == 200, tokens.text
        assert tokens.json()["tokens"] == "2"


@pytest.mark.parametrize("where", ["gateway_url", "direct_url"])
def test_health_and_readiness_over_https(tls_mesh: Mesh, pki: Pki, where: str) -> None:
    base = getattr(tls_mesh, where)
    with httpx.Client(verify=pki.client_context()) as http:
        assert http.get(f"{base}/healthz").status_code == 200
        ready = http.get(f"{base}/readyz")
        assert ready.status_code == 200, ready.text


@pytest.mark.parametrize("where", ["gateway_url", "direct_url"])
def test_https_without_a_client_certificate_or_the_ca_is_refused(
    tls_mesh: Mesh, pki: Pki, where: str
) -> None:
    base = getattr(tls_mesh, where)
    for verify in (pki.client_context(cert=False), True):
        with httpx.Client(verify=verify) as http, pytest.raises(httpx.HTTPError):
            http.get(f"{base}/healthz").raise_for_status()
    with httpx.Client() as http, pytest.raises(httpx.HTTPError):
        http.get(base.replace("https://", "http://") + "/healthz").raise_for_status()


async def test_an_orchestrator_drains_its_streams_over_tls(tls_mesh: Mesh, pki: Pki) -> None:
    """SIGTERM's path under TLS: new calls are refused, the stream in flight finishes."""
    assert tls_mesh.config is not None
    slow = ProviderConfig(
        "slow",
        "openai-compatible",
        base_url=f"{tls_mesh.emulator_url}/v1",
        api_key="k",
        headers={"x-emulator-itl-ms": "100"},
        models=("gpt-4o-mini",),
    )
    config = replace(tls_mesh.config, providers={**tls_mesh.config.providers, "slow": slow})
    server = await serve(config, address="127.0.0.1:0", env=tls_mesh.env())
    address = f"127.0.0.1:{server.port}"
    words = " ".join(f"w{i}" for i in range(10))  # about a second at 100 ms a piece
    request = orchestrator_pb2.StreamChatRequest(input=_chat(words, "slow/gpt-4o-mini").input)
    kinds: list[str] = []
    stopping = None
    try:
        async with channel(address, _client_tls(pki), "test") as ch:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
            async for event in stub.StreamChat(request, timeout=30):
                kinds.append(event.WhichOneof("event") or "")
                if stopping is None and kinds[-1] == "text_delta":
                    stopping = asyncio.ensure_future(server.stop(10))
                    await asyncio.sleep(0.05)
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await stub.Chat(_chat("too late"), timeout=5)
                    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await (stopping or server.stop(0))
    assert kinds[-1] == "finish" and kinds.count("text_delta") >= 2, kinds
