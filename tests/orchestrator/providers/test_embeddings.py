"""The embeddings wire and its lean client, on recorded exchanges (no network)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import orjson
import pytest

from llmesh.services.common.config import ProviderConfig, ResolvedProvider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.usage import Usage
from llmesh.services.emulator import EmulatorSettings, start
from llmesh.services.orchestrator.providers.embeddings import (
    LeanEmbeddings,
    NoEmbeddings,
    embeddings_client,
)
from llmesh.services.orchestrator.providers.embeddings_wire import (
    from_embeddings_response,
    pack_floats,
    to_embeddings_request,
    unpack_floats,
)
from llmesh.services.transport import MockRequest, MockResponse, MockTransport

KEY = "sk-embeddings-secret"


def _client(*responses: MockResponse, seen: list[MockRequest] | None = None) -> LeanEmbeddings:
    queue = list(responses)

    def answer(request: MockRequest) -> MockResponse:
        if seen is not None:
            seen.append(request)
        return queue.pop(0)

    cfg = ProviderConfig("up", "openai-compatible", base_url="http://up.test/v1", timeout=5.0)
    resolved = ResolvedProvider(cfg, "http://up.test/v1", KEY, False)
    return LeanEmbeddings(resolved, MockTransport(answer, base_url="http://up.test/v1"))


def test_request_body_is_openai_s() -> None:
    body = to_embeddings_request("m", EmbeddingRequest(("a", "b"), dimensions=8))
    assert body == {"model": "m", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 8}
    assert "dimensions" not in to_embeddings_request("m", EmbeddingRequest(("a",)))
    assert "user" not in body


def test_the_end_user_is_sent_to_the_provider() -> None:
    body = to_embeddings_request("m", EmbeddingRequest(("a",), user="u-7"))
    assert body["user"] == "u-7"


def test_response_in_either_encoding_by_index() -> None:
    packed = base64.b64encode(pack_floats([0.5, -1.0])).decode()
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.25, 2]},
            {"object": "embedding", "index": 0, "embedding": packed},
        ],
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    vectors, usage = from_embeddings_response(body, 2)
    assert vectors == (
        pack_floats([0.5, -1.0]),
        pack_floats([0.25, 2.0]),
    )  # packed, as llmesh holds them
    assert [unpack_floats(v).tolist() for v in vectors] == [[0.5, -1.0], [0.25, 2.0]]
    assert usage == Usage(input_tokens=3)
    assert unpack_floats(pack_floats([1.5])).tolist() == [1.5]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"data": [{"index": 0, "embedding": [1.0]}]},  # one vector for two inputs
        {"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]},
        {"data": [{"index": 0, "embedding": "!!"}, {"index": 1, "embedding": [1.0]}]},
        {"data": [{"index": 0, "embedding": [True]}, {"index": 1, "embedding": [1.0]}]},
        {"data": [{"index": 0, "embedding": "AAAA"}, {"index": 1, "embedding": "AAAAAAA="}]},
    ],
)
def test_malformed_responses(body: object) -> None:
    with pytest.raises(LlmeshError) as info:
        from_embeddings_response(body, 2)
    assert info.value.reason is Reason.MALFORMED_RESPONSE


async def test_client_posts_to_embeddings_with_the_key() -> None:
    seen: list[MockRequest] = []
    reply = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}],
        "model": "m",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    client = _client(MockResponse(200, {}, orjson.dumps(reply)), seen=seen)
    result = await client.embed("m", EmbeddingRequest(("hi",), user="u-1"), timeout=None)
    assert result.vectors == (pack_floats([1.0, 0.0]),) and result.usage == Usage(input_tokens=2)
    (sent,) = seen
    assert (sent.method, sent.url) == ("POST", "http://up.test/v1/embeddings")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json()["input"] == ["hi"]
    assert sent.json()["user"] == "u-1"


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (
            429,
            {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"},
            Reason.RATE_LIMITED,
        ),
        (500, {"message": "boom", "type": "server_error"}, Reason.UPSTREAM_UNAVAILABLE),
        (
            400,
            {"message": "bad dimensions", "type": "invalid_request_error"},
            Reason.UPSTREAM_INVALID_REQUEST,
        ),
        (
            401,
            {"message": f"bad key {KEY}", "type": "invalid_request_error"},
            Reason.UPSTREAM_AUTH_FAILED,
        ),
    ],
)
async def test_client_classifies_errors(status: int, error: dict[str, str], reason: Reason) -> None:
    client = _client(MockResponse(status, {}, orjson.dumps({"error": error})))
    with pytest.raises(LlmeshError) as info:
        await client.embed("m", EmbeddingRequest(("hi",)), timeout=None)
    assert info.value.reason is reason
    assert KEY not in info.value.message


async def test_anthropic_has_no_embeddings() -> None:
    resolved = ResolvedProvider(ProviderConfig("claude", "anthropic"), "http://a", "k", True)
    client = embeddings_client(resolved)
    assert isinstance(client, NoEmbeddings)
    with pytest.raises(LlmeshError) as info:
        await client.embed("claude-haiku-4-5", EmbeddingRequest(("x",)), timeout=None)
    assert info.value.reason is Reason.PROVIDER_NOT_CONFIGURED
    assert "'claude' (anthropic) has no embeddings API" in info.value.message


async def test_lean_and_sdk_clients_read_the_emulator_alike(emulator_url: str) -> None:
    request = EmbeddingRequest(("same", "texts"), dimensions=64, user="end-user")
    results = []
    for transport in ("lean", "sdk"):
        cfg = ProviderConfig("emu", "emulator", transport=transport, timeout=5.0)
        client = embeddings_client(ResolvedProvider(cfg, f"{emulator_url}/v1", "k", True))
        assert type(client).__name__ == (
            "LeanEmbeddings" if transport == "lean" else "SdkEmbeddings"
        )
        try:
            results.append(await client.embed("text-embedding-3-small", request, timeout=5.0))
        finally:
            await client.aclose()
    lean, sdk = results
    assert lean == sdk
    assert [len(unpack_floats(v)) for v in lean.vectors] == [64, 64]
    assert lean.usage == Usage(input_tokens=2)


async def test_sdk_client_classifies_errors(emulator_url: str) -> None:
    cfg = ProviderConfig(
        "emu", "emulator", transport="sdk", timeout=5.0, headers={"x-emulator-fault": "overloaded"}
    )
    client = embeddings_client(ResolvedProvider(cfg, f"{emulator_url}/v1", "k", True))
    try:
        with pytest.raises(LlmeshError) as info:
            await client.embed("text-embedding-3-small", EmbeddingRequest(("x",)), timeout=5.0)
    finally:
        await client.aclose()
    assert info.value.reason is Reason.OVERLOADED


@pytest.fixture
async def emulator_url() -> AsyncIterator[str]:
    runner, port = await start(EmulatorSettings(host="127.0.0.1", port=0))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
