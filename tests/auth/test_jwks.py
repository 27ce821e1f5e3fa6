"""A key set fetched from an URL: cached, fetched again on rotation, and which keys it keeps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from llmesh.services.auth import TokenVerifier
from llmesh.services.auth.jwks import Jwks, parse_jwks
from llmesh.services.common.auth_settings import JwtIssuer
from llmesh.services.common.errors import LlmeshError, Reason
from tests.support.jwt_keys import JwksServer, TokenIssuer, public_jwk


@pytest.fixture
def issuer() -> TokenIssuer:
    made = TokenIssuer()
    made.add("k1", "RS256")
    return made


@pytest.fixture
def server(issuer: TokenIssuer) -> Iterator[JwksServer]:
    with JwksServer(issuer).running() as running:
        yield running


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_fetched_once_then_cached_then_fetched_on_a_new_kid(
    issuer: TokenIssuer, server: JwksServer
) -> None:
    config = JwtIssuer(
        issuer=issuer.issuer,
        audience=issuer.audience,
        jwks_url=server.url,
        jwks_cache_seconds=60,
        jwks_refresh_seconds=5,
    )
    clock = Clock()
    keys = Jwks(config, clock=clock)
    verifier = TokenVerifier([config], key_sets={config.issuer: keys})
    for _ in range(3):
        assert (await verifier.verify(issuer.token("k1"))).tenant == "acme"
    assert server.requests == 1

    issuer.add("k2", "ES256")  # rotation: a new key appears at the URL
    clock.now += 6
    assert (await verifier.verify(issuer.token("k2"))).key_id == "jwt:alice"
    assert server.requests == 2

    clock.now += 1  # an unknown kid right after a fetch waits for the interval
    with pytest.raises(LlmeshError) as caught:
        await verifier.verify(issuer.token("k2", header_kid="k3"))
    assert caught.value.reason is Reason.TOKEN_KEY_UNKNOWN
    assert server.requests == 2

    clock.now += 60  # the cache expired: fetched again on the next token
    await verifier.verify(issuer.token("k1"))
    assert server.requests == 3


async def test_an_unreachable_url_is_unavailable(issuer: TokenIssuer) -> None:
    with JwksServer(issuer).running() as gone:
        url = gone.url
    config = JwtIssuer(issuer=issuer.issuer, audience=issuer.audience, jwks_url=url)
    with pytest.raises(LlmeshError) as caught:
        await TokenVerifier([config]).verify(issuer.token("k1"))
    assert caught.value.reason is Reason.SERVICE_UNREACHABLE


def test_only_public_signing_keys_of_accepted_algorithms_are_kept(issuer: TokenIssuer) -> None:
    issuer.add("ec", "ES256")
    issuer.add("ed", "EdDSA")
    jwks = issuer.jwks()
    jwks["keys"] += [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
        {**public_jwk(issuer.keys["ec"][1], "enc", "ES256"), "use": "enc"},
        {"kty": "nope", "kid": "junk"},
        "not a key",
    ]
    kept = parse_jwks(json.dumps(jwks).encode(), ("RS256", "ES256", "EdDSA"))
    assert sorted(k for k in kept if k) == ["ec", "ed", "k1"]
    only_ed = parse_jwks(json.dumps(jwks).encode(), ("EdDSA",))
    assert list(only_ed) == ["ed"]
    with pytest.raises(ValueError, match="JSON Web Key Set"):
        parse_jwks(b'{"no": "keys"}', ("RS256",))


async def test_expired_keys_serve_while_a_slow_read_is_under_way(issuer: TokenIssuer) -> None:
    release = asyncio.Event()
    reads = 0

    async def read() -> bytes:
        nonlocal reads
        reads += 1
        if reads > 1:
            await release.wait()  # the issuer answers slowly
        return json.dumps(issuer.jwks()).encode()

    config = JwtIssuer(
        issuer=issuer.issuer, audience=issuer.audience, jwks_file="unused", jwks_cache_seconds=10
    )
    clock = Clock()
    keys = Jwks(config, read=read, clock=clock)
    await keys.key("k1")
    clock.now += 11  # expired: the next token starts a read, which hangs
    slow = asyncio.create_task(keys.key("k1"))
    await asyncio.sleep(0)
    assert reads == 2 and not slow.done()
    assert (await asyncio.wait_for(keys.key("k1"), 1)).key_id == "k1"  # no wait for the read
    release.set()
    await slow
    assert keys.current() == 2
