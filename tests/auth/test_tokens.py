"""Bearer tokens (JWT): accepted per algorithm, refused with the reason why, keys rotated.

Every key is generated at test time; the key set is a file here (`test_jwks.py` serves one
over HTTP).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from llmesh.services.auth import Authenticator, Principal, TokenVerifier, open_key_store
from llmesh.services.auth.jwks import Jwks
from llmesh.services.common.auth_settings import JwtIssuer
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.priority import Priority
from tests.support.jwt_keys import TokenIssuer, new_key

ALGORITHMS = ("RS256", "ES256", "EdDSA")


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    """One key per algorithm, kids ``rs``, ``es`` and ``ed``."""
    made = TokenIssuer()
    for kid, alg in zip(("rs", "es", "ed"), ALGORITHMS, strict=True):
        made.add(kid, alg)
    return made


@pytest.fixture
def config(issuer: TokenIssuer, tmp_path: Path) -> JwtIssuer:
    return JwtIssuer(
        issuer=issuer.issuer,
        audience=issuer.audience,
        jwks_file=str(issuer.write(tmp_path / "jwks.json")),
        tier_claim="plan",
        tiers={"free": 0, "pro": 1, "enterprise": 2},
        max_tier=1,
    )


@pytest.fixture
def verifier(config: JwtIssuer) -> TokenVerifier:
    return TokenVerifier([config])


async def _refused(verifier: TokenVerifier, token: str, reason: Reason) -> LlmeshError:
    with pytest.raises(LlmeshError) as caught:
        await verifier.verify(token)
    error = caught.value
    assert error.reason is reason, error.message
    assert error.spec.grpc_code == "UNAUTHENTICATED" and error.spec.http_status == 401
    for part in token.split("."):  # no part of the token is ever repeated
        if len(part) >= 8:
            assert part not in error.message and part not in str(error.metadata)
    return error


@pytest.mark.parametrize("kid", ["rs", "es", "ed"])
async def test_each_algorithm_is_accepted(
    issuer: TokenIssuer, verifier: TokenVerifier, kid: str
) -> None:
    principal = await verifier.verify(issuer.token(kid))
    assert principal == Principal(tenant="acme", key_id="jwt:alice", tier=0)


async def test_claims_name_the_tenant_and_the_tier_capped_per_issuer(
    issuer: TokenIssuer, verifier: TokenVerifier, config: JwtIssuer
) -> None:
    pro = await verifier.verify(issuer.token("es", tenant="globex", sub="bob", plan="pro"))
    assert pro == Principal(tenant="globex", key_id="jwt:bob", tier=1)
    capped = await verifier.verify(issuer.token("es", plan="enterprise"))
    assert capped.tier == 1  # enterprise maps to 2, this issuer may grant at most 1
    uncapped = TokenVerifier([replace(config, max_tier=None)])
    assert (await uncapped.verify(issuer.token("es", plan="enterprise"))).tier == 2
    assert (await verifier.verify(issuer.token("es", plan="unknown"))).tier == 0


async def test_a_token_tier_is_its_priority_ceiling(
    issuer: TokenIssuer, verifier: TokenVerifier, config: JwtIssuer
) -> None:
    free = await verifier.verify(issuer.token("es", plan="free"))
    assert free.max_priority is Priority.NORMAL and free.default_priority is None
    pro = await verifier.verify(issuer.token("es", plan="pro"))
    assert pro.max_priority is Priority.HIGH
    uncapped = TokenVerifier([replace(config, max_tier=None)])
    enterprise = await uncapped.verify(issuer.token("es", plan="enterprise"))
    assert enterprise.max_priority is Priority.CRITICAL


async def test_the_tenant_claim_is_configurable(issuer: TokenIssuer, config: JwtIssuer) -> None:
    verifier = TokenVerifier([replace(config, tenant_claim="org_id")])
    token = issuer.token("rs", tenant=None, org_id="initech")
    assert (await verifier.verify(token)).tenant == "initech"
    error = await _refused(verifier, issuer.token("rs"), Reason.TOKEN_MALFORMED)
    assert "'org_id'" in error.message


async def test_expired_and_not_yet_valid_tokens_are_refused(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    now = int(time.time())
    await _refused(verifier, issuer.token("rs", exp=now - 120), Reason.TOKEN_EXPIRED)
    await _refused(verifier, issuer.token("rs", nbf=now + 120), Reason.TOKEN_NOT_YET_VALID)
    await _refused(verifier, issuer.token("rs", iat=now + 120), Reason.TOKEN_NOT_YET_VALID)


async def test_clock_skew_within_the_leeway_is_allowed(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    now = int(time.time())
    # the default leeway is 30 s: 10 s of skew either way passes
    await verifier.verify(issuer.token("ed", exp=now - 10))
    await verifier.verify(issuer.token("ed", nbf=now + 10, iat=now + 10))


async def test_a_token_signed_by_another_key_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    for kid, alg in (("rs", "RS256"), ("es", "ES256"), ("ed", "EdDSA")):
        forged = issuer.token(kid, key=new_key(alg))
        await _refused(verifier, forged, Reason.TOKEN_SIGNATURE_INVALID)


async def test_tampered_claims_are_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    header, _, signature = issuer.token("rs").split(".")
    _, payload, _ = issuer.token("rs", tenant="globex").split(".")
    await _refused(verifier, f"{header}.{payload}.{signature}", Reason.TOKEN_SIGNATURE_INVALID)


async def test_alg_none_and_hs256_with_the_public_key_are_refused(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    error = await _refused(verifier, issuer.unsigned("rs"), Reason.TOKEN_SIGNATURE_INVALID)
    assert "algorithm" in error.message
    for kid in ("rs", "es", "ed"):
        forged = issuer.hs256_with_public_key(kid)
        await _refused(verifier, forged, Reason.TOKEN_SIGNATURE_INVALID)


async def test_a_key_of_another_algorithm_than_the_header_says_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    # signed ES256 with the EC key, but the header names the RSA key's kid
    await _refused(verifier, issuer.token("es", header_kid="rs"), Reason.TOKEN_SIGNATURE_INVALID)


async def test_wrong_audience_and_issuer_are_refused(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    error = await _refused(verifier, issuer.token("rs", aud="other"), Reason.TOKEN_AUDIENCE_INVALID)
    assert issuer.audience in error.message
    await _refused(verifier, issuer.token("rs", aud=None), Reason.TOKEN_MALFORMED)
    error = await _refused(
        verifier, issuer.token("rs", iss="https://evil.test/"), Reason.TOKEN_ISSUER_INVALID
    )
    assert "evil" not in error.message
    await _refused(verifier, issuer.token("rs", iss=None), Reason.TOKEN_ISSUER_INVALID)


async def test_an_unknown_kid_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token = issuer.token("rs", header_kid="nope")
    error = await _refused(verifier, token, Reason.TOKEN_KEY_UNKNOWN)
    assert "nope" not in error.message


@pytest.mark.parametrize(
    ("changes", "claim"),
    [({"exp": None}, "exp"), ({"sub": None}, "sub"), ({"tenant": None}, "tenant")],
)
async def test_missing_claims_are_malformed(
    issuer: TokenIssuer, verifier: TokenVerifier, changes: dict[str, None], claim: str
) -> None:
    error = await _refused(verifier, issuer.token("es", **changes), Reason.TOKEN_MALFORMED)
    assert repr(claim) in error.message


async def test_bad_claim_values_are_malformed(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    await _refused(verifier, issuer.token("es", tenant="a b"), Reason.TOKEN_MALFORMED)
    await _refused(verifier, issuer.token("es", sub="x" * 201), Reason.TOKEN_MALFORMED)
    await _refused(verifier, issuer.token("es", exp="soon"), Reason.TOKEN_MALFORMED)
    for garbage in ("eyJ.x.y", "eyJhbGciOiJIUzI1NiJ9", "eyJ" + "a" * 20000 + ".b.c"):
        await _refused(verifier, garbage, Reason.TOKEN_MALFORMED)


async def test_refusals_are_logged_without_the_token(
    issuer: TokenIssuer, verifier: TokenVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    token = issuer.token("rs", aud="other")
    with caplog.at_level(logging.DEBUG):
        await _refused(verifier, token, Reason.TOKEN_AUDIENCE_INVALID)
    assert "TOKEN_AUDIENCE_INVALID" in caplog.text
    assert all(part not in caplog.text for part in token.split("."))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_rotation_is_picked_up_and_refetches_are_rate_limited(
    config: JwtIssuer, tmp_path: Path
) -> None:
    rotating = TokenIssuer()
    rotating.add("old", "ES256")
    path = rotating.write(tmp_path / "rotating.json")
    config = replace(config, jwks_file=str(path), jwks_refresh_seconds=10, jwks_cache_seconds=300)
    clock = Clock()
    keys = Jwks(config, clock=clock)
    verifier = TokenVerifier([config], key_sets={config.issuer: keys})
    await verifier.verify(rotating.token("old"))
    assert keys.fetches == 1

    clock.now += 11
    rotating.add("new", "EdDSA")  # the issuer rotates: a new key is published ...
    rotating.write(path)
    assert (await verifier.verify(rotating.token("new"))).tenant == "acme"  # ... and found
    assert keys.fetches == 2

    bogus = rotating.token("new", header_kid="bogus")
    for _ in range(5):  # made-up kids within the interval cost no fetch
        await _refused(verifier, bogus, Reason.TOKEN_KEY_UNKNOWN)
    assert keys.fetches == 2

    old_token = rotating.token("old")
    del rotating.keys["old"]  # the old key is withdrawn: still held until the cache expires
    rotating.write(path)
    await verifier.verify(old_token)
    clock.now += 301
    await _refused(verifier, old_token, Reason.TOKEN_KEY_UNKNOWN)
    assert keys.fetches == 3


async def test_an_unreadable_key_set_is_unavailable_not_a_bad_token(
    issuer: TokenIssuer, config: JwtIssuer, tmp_path: Path
) -> None:
    verifier = TokenVerifier([replace(config, jwks_file=str(tmp_path / "absent.json"))])
    with pytest.raises(LlmeshError) as caught:
        await verifier.verify(issuer.token("rs"))
    assert caught.value.reason is Reason.SERVICE_UNREACHABLE and caught.value.retryable


def _spoil(path: Path) -> None:
    path.write_text("not json")


async def test_a_failed_refresh_keeps_the_keys_held(
    issuer: TokenIssuer, config: JwtIssuer, tmp_path: Path
) -> None:
    clock = Clock()
    keys = Jwks(config, clock=clock)
    verifier = TokenVerifier([config], key_sets={config.issuer: keys})
    await verifier.verify(issuer.token("rs"))
    _spoil(Path(config.jwks_file))
    clock.now += 1000
    assert (await verifier.verify(issuer.token("rs"))).key_id == "jwt:alice"
    assert keys.fetches == 2


# Beside API keys, in the authenticator


async def test_the_authenticator_takes_keys_and_tokens(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    store = await open_key_store("sqlite:///:memory:")
    try:
        _, key = await store.create("keyco")
        auth = Authenticator(store, required=False, tokens=verifier)
        assert auth.required  # issuers configured: always on, keys or not
        bearer = [("authorization", f"Bearer {issuer.token('ed', plan='pro')}")]
        assert await auth.authenticate(bearer) == Principal("acme", "jwt:alice", 1)
        assert (await auth.authenticate([("authorization", f"Bearer {key}")])).tenant == "keyco"
        with pytest.raises(LlmeshError) as caught:
            await auth.authenticate([*bearer, ("x-llmesh-tenant", "other")])
        assert caught.value.reason is Reason.PERMISSION_DENIED
        with pytest.raises(LlmeshError) as caught:
            await auth.authenticate([("authorization", "Bearer " + issuer.unsigned("rs"))])
        assert caught.value.reason is Reason.TOKEN_SIGNATURE_INVALID
        with pytest.raises(LlmeshError) as caught:
            await auth.authenticate([])
        assert caught.value.reason is Reason.UNAUTHENTICATED
    finally:
        await store.aclose()


async def test_without_issuers_a_jwt_is_a_malformed_key(issuer: TokenIssuer) -> None:
    store = await open_key_store("sqlite:///:memory:")
    try:
        await store.create("keyco")
        auth = Authenticator(store, required=True)
        with pytest.raises(LlmeshError) as caught:
            await auth.authenticate([("authorization", f"Bearer {issuer.token('rs')}")])
        assert caught.value.reason is Reason.UNAUTHENTICATED
    finally:
        await store.aclose()


async def test_tokens_alone_need_no_key_store(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    auth = Authenticator(None, required=True, tokens=verifier)
    bearer = [("authorization", f"Bearer {issuer.token('rs')}")]
    assert (await auth.authenticate(bearer)).tenant == "acme"
    with pytest.raises(LlmeshError) as caught:
        await auth.authenticate([("authorization", "Bearer llm_0123456789ab_" + "a" * 43)])
    assert caught.value.reason is Reason.UNAUTHENTICATED


# Accepted tokens remembered


class Wall:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token whose signature and claims were checked, in order."""
    checked: list[str] = []
    decode = TokenVerifier._decode

    def counting(token: str, key: Any, issuer: JwtIssuer) -> dict[str, Any]:
        checked.append(token)
        return decode(token, key, issuer)

    monkeypatch.setattr(TokenVerifier, "_decode", staticmethod(counting))
    return checked


async def test_an_accepted_token_is_remembered_until_it_expires(
    issuer: TokenIssuer, config: JwtIssuer, decodes: list[str]
) -> None:
    wall = Wall()
    verifier = TokenVerifier([config], wall=wall)
    token = issuer.token("es", exp=int(wall.now) + 60, plan="pro")
    for _ in range(3):
        assert await verifier.verify(token) == Principal("acme", "jwt:alice", 1)
    assert decodes == [token]
    wall.now += 60 + config.leeway_seconds  # past exp and its leeway: checked afresh
    await verifier.verify(token)  # (still valid by the real clock PyJWT reads)
    assert decodes == [token, token]


async def test_a_remembered_token_is_checked_again_under_new_keys(
    issuer: TokenIssuer, config: JwtIssuer, decodes: list[str]
) -> None:
    clock = Clock()
    keys = Jwks(replace(config, jwks_refresh_seconds=1), clock=clock)
    verifier = TokenVerifier([config], key_sets={config.issuer: keys})
    token = issuer.token("rs")
    await verifier.verify(token)
    await verifier.verify(token)
    assert len(decodes) == 1
    clock.now += 2
    with pytest.raises(LlmeshError):  # an unknown kid makes the set be read again ...
        await verifier.verify(issuer.token("rs", header_kid="other"))
    await verifier.verify(token)  # ... and tokens accepted under the old set are checked again
    assert len(decodes) == 2
    clock.now += config.jwks_cache_seconds  # the set expired: checked again
    await verifier.verify(token)
    assert len(decodes) == 3


async def test_refused_tokens_are_not_remembered(
    issuer: TokenIssuer, verifier: TokenVerifier, decodes: list[str]
) -> None:
    forged = issuer.token("rs", key=new_key("RS256"))
    for _ in range(2):
        await _refused(verifier, forged, Reason.TOKEN_SIGNATURE_INVALID)
    assert decodes == [forged, forged]
