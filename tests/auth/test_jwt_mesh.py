"""JWT bearer tokens on a running orchestrator, over gRPC and through the gateway.

The orchestrator reads the issuer's key set from a local HTTP server (keys generated at
test time); a call with a token is recorded in the ledger under the tenant and subject its
claims name, and bad tokens are refused with UNAUTHENTICATED and their reason, over gRPC as
AIP-193 details and over HTTP as 401 in the OpenAI and Anthropic shapes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import httpx
import pytest

from llmesh.gateway import GatewaySettings, start
from llmesh.gateway.server import RunningGateway
from llmesh.services.common.auth_settings import JwtIssuer
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core.reasons import Reason
from llmesh.services.orchestrator.server import OrchestratorServer, serve
from llmesh.services.processor.server import serve as serve_processor
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.jwt_keys import JwksServer, TokenIssuer, new_key
from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh

BODY = {"model": "emulator/echo", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class JwtMesh:
    issuer: TokenIssuer
    jwks: JwksServer
    server: OrchestratorServer
    gateway: RunningGateway
    database_url: str

    def stub(self, channel: grpc.aio.Channel) -> orchestrator_pb2_grpc.OrchestratorServiceStub:
        return orchestrator_pb2_grpc.OrchestratorServiceStub(channel)


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    made = TokenIssuer()
    made.add("rs", "RS256")
    made.add("es", "ES256")
    return made


@pytest.fixture
def jwks(issuer: TokenIssuer) -> Iterator[JwksServer]:
    with JwksServer(issuer).running() as running:
        yield running


@pytest.fixture
async def jwt_mesh(
    mesh: Mesh, issuer: TokenIssuer, jwks: JwksServer, tmp_path: Path
) -> AsyncIterator[JwtMesh]:
    assert mesh.config is not None
    database_url = f"sqlite:///{tmp_path}/jwt.db"
    config = replace(
        mesh.config,
        database_url=database_url,
        jwt_issuers=(
            JwtIssuer(
                issuer=issuer.issuer,
                audience=issuer.audience,
                jwks_url=jwks.url,
                jwks_refresh_seconds=0.01,
                tier_claim="plan",
                tiers={"pro": 1},
            ),
        ),
    )
    server = await serve(config, address="127.0.0.1:0", env=mesh.env())
    processor = await serve_processor("127.0.0.1:0", config=config)
    settings = replace(
        GatewaySettings.from_config(config),
        orchestrator_address=f"127.0.0.1:{server.port}",
        processor_address=f"127.0.0.1:{processor.port}",
    )
    gateway = await start(settings)
    try:
        yield JwtMesh(issuer, jwks, server, gateway, database_url)
    finally:
        await gateway.stop()
        await processor.stop(None)
        await server.stop(0.5)


def _chat() -> orchestrator_pb2.ChatRequest:
    message = chat_pb2.Message(role=chat_pb2.ROLE_USER, content="a b c")
    return orchestrator_pb2.ChatRequest(
        input=chat_pb2.ChatInput(model="emulator/echo", messages=[message])
    )


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def test_a_grpc_call_is_attributed_to_the_tenant_of_its_token(jwt_mesh: JwtMesh) -> None:
    token = jwt_mesh.issuer.token("rs", tenant="globex", sub="svc-batch", plan="pro")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{jwt_mesh.server.port}") as channel:
        reply = await jwt_mesh.stub(channel).Chat(_chat(), metadata=_bearer(token), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await jwt_mesh.stub(channel).Chat(_chat(), timeout=10)
    row = await ledger_record(jwt_mesh.database_url, reply.request_id)
    assert (row.tenant, row.key_id) == ("globex", "jwt:svc-batch")
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED  # tokens on: no anonymous calls


async def test_a_gateway_call_is_attributed_to_the_tenant_of_its_token(
    jwt_mesh: JwtMesh,
) -> None:
    token = jwt_mesh.issuer.token("es", tenant="initech", sub="alice@initech")
    async with httpx.AsyncClient(base_url=jwt_mesh.gateway.url, timeout=10) as http:
        openai = await http.post(
            "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {token}"}
        )
        anthropic = await http.post(
            "/v1/messages",
            json={**BODY, "max_tokens": 16},
            headers={"x-api-key": token, "anthropic-version": "2023-06-01"},
        )
    assert (openai.status_code, anthropic.status_code) == (200, 200)
    for reply in (openai, anthropic):
        row = await ledger_record(jwt_mesh.database_url, reply.headers["x-request-id"])
        assert (row.tenant, row.key_id) == ("initech", "jwt:alice@initech")


def _bad_tokens(issuer: TokenIssuer) -> list[tuple[str, str, Reason]]:
    now = int(time.time())
    return [
        ("expired", issuer.token("rs", exp=now - 600), Reason.TOKEN_EXPIRED),
        ("not yet valid", issuer.token("rs", nbf=now + 600), Reason.TOKEN_NOT_YET_VALID),
        ("forged", issuer.token("rs", key=new_key("RS256")), Reason.TOKEN_SIGNATURE_INVALID),
        ("wrong audience", issuer.token("es", aud="someone-else"), Reason.TOKEN_AUDIENCE_INVALID),
        ("wrong issuer", issuer.token("es", iss="https://evil.test/"), Reason.TOKEN_ISSUER_INVALID),
        ("unknown kid", issuer.token("es", header_kid="gone"), Reason.TOKEN_KEY_UNKNOWN),
        ("alg none", issuer.unsigned("rs"), Reason.TOKEN_SIGNATURE_INVALID),
        ("hs256 public key", issuer.hs256_with_public_key("rs"), Reason.TOKEN_SIGNATURE_INVALID),
        ("no tenant", issuer.token("es", tenant=None), Reason.TOKEN_MALFORMED),
    ]


async def test_bad_tokens_are_unauthenticated_with_their_reason_over_grpc(
    jwt_mesh: JwtMesh,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{jwt_mesh.server.port}") as channel:
        for what, token, reason in _bad_tokens(jwt_mesh.issuer):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await jwt_mesh.stub(channel).Chat(_chat(), metadata=_bearer(token), timeout=10)
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED, what
            error = from_rpc_error(caught.value)
            assert error.reason is reason, what
            assert token.split(".")[1] not in str(caught.value.details()), what


async def test_bad_tokens_are_401_in_the_openai_and_anthropic_shapes(jwt_mesh: JwtMesh) -> None:
    async with httpx.AsyncClient(base_url=jwt_mesh.gateway.url, timeout=10) as http:
        for what, token, reason in _bad_tokens(jwt_mesh.issuer):
            openai = await http.post(
                "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {token}"}
            )
            assert openai.status_code == 401, what
            error = openai.json()["error"]
            assert error["type"] == "authentication_error", what
            assert error["code"] == reason.value.lower(), what
            if what == "expired":  # the README's example
                assert error["message"] == "bearer token expired" and error["param"] is None
                assert openai.headers["x-should-retry"] == "false"
            anthropic = await http.post(
                "/v1/messages",
                json={**BODY, "max_tokens": 16},
                headers={"x-api-key": token, "anthropic-version": "2023-06-01"},
            )
            assert anthropic.status_code == 401, what
            body = anthropic.json()
            assert (body["type"], body["error"]["type"]) == ("error", "authentication_error")
            native = await http.post(
                "/api/v1/chat",
                json={"input": {"model": "emulator/echo", "messages": [{"content": "hi"}]}},
                headers={"authorization": f"Bearer {token}"},
            )
            assert native.status_code == 401, what
            assert native.json()["error"]["reason"] == reason.value, what
            for reply in (openai, anthropic, native):
                assert token.split(".")[1] not in reply.text, what


async def test_a_rotated_key_is_picked_up(jwt_mesh: JwtMesh) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{jwt_mesh.server.port}") as channel:
        stub = jwt_mesh.stub(channel)
        await stub.Chat(_chat(), metadata=_bearer(jwt_mesh.issuer.token("rs")), timeout=10)
        fetched = jwt_mesh.jwks.requests
        await asyncio.sleep(0.05)  # past jwks_refresh_seconds (0.01) since that fetch
        jwt_mesh.issuer.add("fresh", "EdDSA")  # the issuer publishes a new key ...
        try:
            token = jwt_mesh.issuer.token("fresh", tenant="umbrella")
            reply = await stub.Chat(_chat(), metadata=_bearer(token), timeout=10)
        finally:
            del jwt_mesh.issuer.keys["fresh"]
    row = await ledger_record(jwt_mesh.database_url, reply.request_id)
    assert row.tenant == "umbrella"  # ... and its tokens are accepted: the set was read again
    assert jwt_mesh.jwks.requests == fetched + 1


async def test_the_processor_takes_tokens_too(jwt_mesh: JwtMesh) -> None:
    body = {"model": "openai/gpt-4o", "text": "hello world"}
    good = jwt_mesh.issuer.token("rs")
    expired = jwt_mesh.issuer.token("rs", exp=int(time.time()) - 600)
    async with httpx.AsyncClient(base_url=jwt_mesh.gateway.url, timeout=10) as http:
        counted = await http.post(
            "/api/v1/tokens/count", json=body, headers={"authorization": f"Bearer {good}"}
        )
        refused = await http.post(
            "/api/v1/tokens/count", json=body, headers={"authorization": f"Bearer {expired}"}
        )
    assert counted.status_code == 200 and counted.json()["tokens"] == "2"
    assert refused.status_code == 401
    assert refused.json()["error"]["reason"] == "TOKEN_EXPIRED"


async def test_stored_responses_belong_to_the_tenant_of_the_token(jwt_mesh: JwtMesh) -> None:
    alpha = {"authorization": f"Bearer {jwt_mesh.issuer.token('rs', tenant='alpha')}"}
    beta = {"authorization": f"Bearer {jwt_mesh.issuer.token('es', tenant='beta')}"}
    forged = {"authorization": f"Bearer {jwt_mesh.issuer.unsigned('rs', tenant='alpha')}"}
    async with httpx.AsyncClient(base_url=jwt_mesh.gateway.url, timeout=10) as http:
        made = await http.post(
            "/v1/responses", json={"model": "emulator/echo", "input": "hi"}, headers=alpha
        )
        assert made.status_code == 200, made.text
        path = f"/v1/responses/{made.json()['id']}"
        assert (await http.get(path, headers=alpha)).status_code == 200
        assert (await http.get(path, headers=beta)).status_code == 404
        assert (await http.get(path, headers=forged)).status_code == 401
        assert (await http.get(path)).status_code == 401
